"""`MultimodalDataset`: a `keras.utils.PyDataset` over several arrays per sample."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import operator
import warnings
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from multimodal_dataset.sampling import Sampler, check_seed, check_shard, draw_seed
from multimodal_dataset.sources import ReplacedSamplesWarning, Replacement
from multimodal_dataset.structure import Field, Group, make_group
from multimodal_dataset.workers import Gatherer

#: Keras reads up to this many batches of epoch 0 before training (to build the model,
#: and on TensorFlow to infer the output signature); see `MultimodalDataset.on_epoch_end`.
_PREVIEW_BATCHES = 3

if TYPE_CHECKING:
    from multimodal_dataset.structure import ArraySpec
    from multimodal_dataset.table import TablePreprocessing


class MultimodalDataset(keras.utils.PyDataset):  # type: ignore[misc]
    """Batches of several inputs (and targets, and sample weights) for ``model.fit``.

    Every batch has the structure Keras expects on every backend: a top-level tuple
    ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` where ``x`` is one array, a tuple of
    arrays (one per model input, in the model's order) or a dict keyed by the names of the
    model's ``keras.Input`` layers. Floating and bool arrays come out as
    ``keras.config.floatx()``, integer arrays as ``int32``, per batch, without copying the
    whole array up front.

    Samples are shuffled per sample, in an order that is a pure function of
    ``(seed, epoch)``: each epoch visits every sample exactly once (with
    ``drop_remainder=True``, only full batches and no sample twice), in a new order each
    epoch, identically on every backend and in every worker thread or process. The epoch
    advances in ``on_epoch_end``, which Keras calls after every epoch (and once before the
    first epoch of each ``fit``, ``evaluate`` or ``predict``).

    While Keras runs an epoch (between its ``on_epoch_begin`` and ``on_epoch_end`` calls),
    the dataset serves its batches in its own order, whatever order Keras asks for them
    in: Keras 3.15 and older reorder a ``PyDataset``'s batch requests with Python's unseeded
    ``random`` under ``fit(shuffle=True)``, the default, which would make two runs with the
    same seed differ. The samples are already shuffled per sample, so ``fit``'s
    ``shuffle`` argument changes nothing. Outside an epoch (your own loops), ``ds[i]`` is
    batch ``i``.

    Example:

    ```python
    import keras
    from multimodal_dataset import MultimodalDataset, models, synthetic

    (img, txt, num), y = synthetic.make_multimodal(1000, seed=0)
    model = models.build_reference_model()
    ds = MultimodalDataset((img, txt, num), y, batch_size=64, seed=0)
    ds.check(model)  # raises one ValueError listing every mismatch
    model.fit(ds, epochs=3)
    ```

    Args:
        inputs: One array (batches ``(x, y)``), a tuple or list of arrays (batches
            ``((a, b, c), y)``), or a dict of arrays keyed by ``keras.Input`` names (batches
            ``({name: ...}, y)``). Every array's first dimension is the sample dimension.
            An "array" may be a numpy array, a memory map, the path of a ``.npy`` file
            (memory-mapped, read a batch at a time), or a `Source` such as `ImageFiles`
            or `TextTokens`.
        targets: ``None`` for inference, an array, or a tuple/dict of arrays for a model
            with several outputs.
        sample_weights: ``None``, or an array of per-sample weights (shape ``(n,)`` or
            ``(n, timesteps)``); batches become ``(x, y, w)``. Needs ``targets``.
        batch_size: Samples per batch, a positive integer.
        shuffle: Whether each epoch visits the samples in a new random order. ``None``
            (the default) shuffles when ``targets`` are given (training) and keeps the
            sample order for inference datasets (``targets=None``), so that the rows of
            ``model.predict(ds)`` line up with the inputs, as with Keras's own ``predict``.
        seed: The seed of the shuffle order; ``None`` draws one, exposed as ``ds.seed``.
        drop_remainder: Whether to drop the last batch when it is not full (with
            ``shard``: the last global step, the same samples on every shard).
        pad_remainder: Fill the last batch up to ``batch_size`` with samples from the start
            of the epoch's order, weighted 0: every batch has the same size (divisible by
            the device count, no recompilation), no sample is lost, and the padding adds
            nothing to the loss or the metrics. Batches then always carry sample weights
            (1, or yours, for real samples). Needs targets.
        shard: ``(index, count)``: this process reads shard ``index`` of ``count`` of every
            epoch's global order (see "Scaling out" in the README). ``None`` (the default)
            takes the data shard of the active ``keras.distribution`` (one shard when none
            is set); ``(0, 1)`` reads everything. Where Keras shards every ``PyDataset``
            itself (Keras 3.16 and newer under ``auto_shard_dataset=True``, the default of
            ``DataParallel``), ``None`` lays the batches out so that Keras's sharding
            reads each sample once, and a ``shard`` given by hand is refused (it would
            shard twice).
        workers: How many worker threads (or processes) gather each batch's samples in
            parallel. Unlike a hand-written ``PyDataset``, the workers run inside the
            dataset and Keras reads it from its main thread (``ds.workers`` is 1), because
            Keras's own pool serves batches of one epoch in the next (see
            ``multimodal_dataset.workers``); the user's values are ``ds.num_workers`` and
            ``ds.use_processes``. For in-memory arrays ``workers=1`` is fastest; workers pay
            off for sources that decode files.
        use_multiprocessing: Gather in worker processes instead of threads, started with
            the default multiprocessing start method (fork or spawn); the dataset pickles.
        max_queue_size: Passed to ``keras.utils.PyDataset`` (Keras queues nothing for a
            dataset it reads in its main thread).

    Raises:
        ValueError: For arrays of unequal length, no samples, 0-d arrays, a batch size
            that is not a positive integer, or sample weights without targets.
        TypeError: For arrays whose dtype a model cannot consume (strings, objects,
            complex numbers) and structures nested more than one level.
    """

    #: The fitted table preprocessing, for datasets made by `from_table` (else None).
    preprocessing: TablePreprocessing | None = None

    def __init__(
        self,
        inputs: Any,
        targets: Any = None,
        sample_weights: Any = None,
        *,
        batch_size: int = 32,
        shuffle: bool | None = None,
        seed: int | None = None,
        drop_remainder: bool = False,
        pad_remainder: bool = False,
        shard: tuple[int, int] | None = None,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ) -> None:
        # Keras's own worker pool serves stale batches across epochs (see workers.py), so
        # Keras iterates this dataset in its main thread and the workers run here.
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=max_queue_size)
        batch_size = _check_batch_size(batch_size)
        floatx = keras.config.floatx()
        self._inputs = make_group(inputs, "inputs", floatx)
        self._targets = None if targets is None else make_group(targets, "targets", floatx)
        self._weights = None
        if sample_weights is not None:
            if self._targets is None:
                raise ValueError(
                    "sample_weights were given without targets. Keras weighs the loss of each "
                    "sample against its target, so pass targets too: "
                    "MultimodalDataset(inputs, targets, sample_weights)."
                )
            self._weights = _weights_group(sample_weights, self._inputs, floatx)
        groups = (self._inputs, self._targets, self._weights)
        self._groups = tuple(g for g in groups if g is not None)
        num_samples = _common_length(self._groups)
        if pad_remainder:
            if drop_remainder:
                raise ValueError(
                    "drop_remainder=True and pad_remainder=True contradict each other: drop "
                    "the last partial step, or pad it with zero-weight samples, not both."
                )
            if self._targets is None:
                raise ValueError(
                    "pad_remainder=True pads the last batch with samples of weight 0, which "
                    "only training and evaluation (with targets) can ignore. For inference, "
                    "leave it False: model.predict accepts a partial last batch."
                )
            if self._weights is None:
                # Weight 1 for every real sample, 0 for the padding.
                ones = np.ones(num_samples, dtype=floatx)
                self._weights = Group("single", (Field("sample_weights", ones, ones.dtype, False),))
                self._groups += (self._weights,)
        seed = draw_seed() if seed is None else check_seed(seed)
        if shuffle is None:
            shuffle = self._targets is not None
        _check_keras_takes_py_datasets_across_processes()
        self._shard_given = shard is not None
        self._layout = _shard_layout() if shard is None else (*check_shard(shard), False)
        if shard is not None and keras_shards_py_datasets()[1] > 1:
            raise ValueError(
                f"shard={tuple(shard)!r} was given, but this Keras ({keras.version()}) shards "
                "every PyDataset itself under the active distribution (auto_shard_dataset="
                "True): each process would read a shard of a shard. Leave shard=None (the "
                "dataset then lays out its batches for Keras's sharding, each sample once per "
                "epoch), or turn Keras's sharding off with "
                "keras.distribution.DataParallel(..., auto_shard_dataset=False)."
            )
        shard_index, shard_count, keras_shards = self._layout
        self._sampler = Sampler(
            num_samples,
            batch_size,
            bool(shuffle),
            seed,
            drop_remainder,
            shard_index,
            shard_count,
            pad_remainder,
            serve_all_shards=keras_shards,
        )
        if self._sampler.num_batches == 0:
            shards = f" x {shard_count} shards" if shard_count > 1 else ""
            raise ValueError(
                f"drop_remainder=True with {num_samples} samples and batch_size={batch_size}"
                f"{shards} leaves no full batch. Use a batch_size of at most "
                f"{num_samples // shard_count}, or drop_remainder=False"
                f"{' with pad_remainder=True' if shard_count > 1 else ''}."
            )
        self._epoch = 0
        self._position = 0
        self._in_epoch = False  # between Keras's on_epoch_begin and on_epoch_end
        self._served = 0  # batches served in this epoch
        self._reported: list[Replacement] = []
        self._pending: dict[tuple[str, int], Replacement] = {}  # not reported yet
        self._gatherer = Gatherer(
            [f for g in self._groups for f in g.fields], workers, use_multiprocessing
        )

    # ----------------------------------------------------------------- PyDataset protocol

    def __len__(self) -> int:
        """The number of batches per epoch."""
        return self._sampler.num_batches

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        """Batch ``index`` of the current epoch: ``(x,)``, ``(x, y)`` or ``(x, y, w)``.

        While Keras runs an epoch, the ``k``-th request of the epoch is batch ``k``
        whatever ``index`` Keras asks for (see the class docstring), unless Keras shards
        the dataset itself.
        """
        position = self._check_index(index)
        if self._in_epoch and not self._sampler.serve_all_shards and self._served < len(self):
            position = self._served  # Keras's own batch shuffle would not be reproducible
        self._served += 1
        indices = self._sampler.batch(self._epoch, position)
        arrays, replaced = self._gatherer.gather(indices, self.seed, self._epoch, position)
        for r in replaced:
            self._pending[(r.field, r.sample)] = r
        self._position = max(self._position, position + 1)
        if self._sampler.pad:
            real = self._sampler.real_count(position)
            if real < len(indices):
                arrays[-1][real:] = 0  # the padding's sample weights (a fresh gathered copy)
        batch = []
        start = 0
        for group in self._groups:
            stop = start + len(group.fields)
            batch.append(group.pack(arrays[start:stop]))
            start = stop
        return tuple(batch)

    def on_epoch_begin(self) -> None:
        """Keras calls this before each epoch: batches are then served in the dataset's own
        order, whatever order Keras requests them in.

        Raises:
            ValueError: If the sharding the dataset was built for no longer matches the
                active ``keras.distribution`` (it was set after the dataset was built).
        """
        if not self._shard_given and _shard_layout() != self._layout:
            index, count, keras_shards = _shard_layout()
            raise ValueError(
                f"This dataset was built for shard {self._layout[:2]} but the active "
                f"keras.distribution now gives shard ({index}, {count})"
                f"{' sharded by Keras itself' if keras_shards else ''}: the distribution was "
                "set (or changed) after the dataset was built, and training would read a "
                "fraction of the data or stall. Build the dataset after "
                "keras.distribution.set_distribution(...), or pass shard= explicitly."
            )
        self._in_epoch = True
        self._served = 0

    def on_epoch_end(self) -> None:
        """Advances to the next epoch's order (Keras calls this after every epoch).

        Warns with a `ReplacedSamplesWarning` if sources replaced samples in the epoch
        (``on_error="replace"``); every replacement is kept in ``ds.replacements``. The
        batches Keras reads of epoch 0 before training starts (to build the model, and on
        TensorFlow the output signature) are not an epoch of their own: what they replaced
        is reported with the first training epoch, each sample once. Releases the worker
        pools if no batch follows within ``workers.KEEP_ALIVE_S`` seconds.
        """
        preview = self._epoch == 0 and self._served <= _PREVIEW_BATCHES and self._served < len(self)
        if not preview:
            self._report_replacements()
        self._epoch += 1
        self._position = 0
        self._in_epoch = False
        self._served = 0
        self._gatherer.release_soon()

    def _report_replacements(self) -> None:
        new = list(self._pending.values())
        self._pending = {}
        self._reported += new
        if not new:
            return
        shown = "; ".join(f"{r.field} {r.reason}" for r in new[:5])
        more = f"; and {len(new) - 5} more" if len(new) > 5 else ""
        warnings.warn(
            f"MultimodalDataset epoch {self._epoch}: {len(new)} sample"
            f"{'s were' if len(new) > 1 else ' was'} replaced because "
            f"{'they' if len(new) > 1 else 'it'} could not be read (on_error='replace'): "
            f"{shown}{more}. Every replacement is listed in ds.replacements.",
            ReplacedSamplesWarning,
            stacklevel=2,
        )

    @property
    def replacements(self) -> list[Replacement]:
        """Every sample a source replaced so far (``on_error="replace"``), once per epoch."""
        return self._reported + list(self._pending.values())

    # ----------------------------------------------------------------------- public API

    def batch_indices(self, index: int) -> np.ndarray:
        """The sample indices that make up batch ``index`` of the current epoch.

        Raises:
            IndexError: If ``index`` is not in ``[-len(ds), len(ds))``.
        """
        return self._sampler.batch(self._epoch, self._check_index(index))

    def _check_index(self, index: int) -> int:
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(
                f"Batch indices must be integers; got {index!r} of type {type(index).__name__}."
            ) from None
        num_batches = self._sampler.num_batches
        if index < 0:
            index += num_batches
        if not 0 <= index < num_batches:
            raise IndexError(
                f"Batch index {index} is out of range: this dataset has {num_batches} batches "
                f"per epoch (valid indices are 0 to {num_batches - 1})."
            )
        return index

    @property
    def element_spec(self) -> tuple[Any, ...]:
        """The structure of every batch with an `ArraySpec` per array, read from no data.

        For example ``((ArraySpec((None, 32, 32, 3), 'float32', 'inputs[0]'), ...),
        ArraySpec((None,), 'int32', 'targets'))``.
        """
        return tuple(group.spec for group in self._groups)

    @property
    def seed(self) -> int:
        """The seed of the shuffle order (drawn at construction when ``seed=None``)."""
        return self._sampler.seed

    @property
    def epoch(self) -> int:
        """The epoch whose order ``ds[i]`` serves now (0 until the first ``on_epoch_end``)."""
        return self._epoch

    @property
    def num_samples(self) -> int:
        """The number of samples in the dataset."""
        return self._sampler.num_samples

    @property
    def batch_size(self) -> int:
        """Samples per batch (the last batch may be smaller unless ``drop_remainder``)."""
        return self._sampler.batch_size

    @property
    def shuffle(self) -> bool:
        return self._sampler.shuffle

    @property
    def drop_remainder(self) -> bool:
        return self._sampler.drop_remainder

    @property
    def pad_remainder(self) -> bool:
        return self._sampler.pad

    @property
    def shard(self) -> tuple[int, int]:
        """``(index, count)``: which shard of every epoch this process reads (by itself,
        or through Keras's own sharding when `sharded_by_keras`)."""
        return self._layout[0], self._layout[1]

    @property
    def sharded_by_keras(self) -> bool:
        """Whether Keras shards this dataset itself (Keras 3.16+, ``auto_shard_dataset``):
        ``len(ds)`` then counts every process's batches and Keras reads this process's."""
        return self._sampler.serve_all_shards

    # --------------------------------------------------------------------- resumable state

    def get_state(self) -> dict[str, Any]:
        """Where the batch stream is: enough, with the same data, to continue it exactly.

        ``position`` is one past the highest batch index read in the current epoch: the
        next batch of an in-order loop (``for i in range(position, len(ds))``). ``fit``
        resumes per epoch: see `epoch_callback`.
        """
        return {
            "seed": self.seed,
            "epoch": self._epoch,
            "position": self._position,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "shard": list(self.shard),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continues the batch stream from a `get_state` of a dataset like this one.

        Raises:
            ValueError: If the state comes from a dataset with other samples, seed, batch
                size or shuffling (its epochs would be different batches), or has a
                position past the end of an epoch.
        """
        missing = {"seed", "epoch", "position", "num_samples", "batch_size"} - set(state)
        if missing:
            raise ValueError(
                f"Not a MultimodalDataset state: missing {sorted(missing)}. Use the dict "
                "that ds.get_state() returns."
            )
        mine = self.get_state()
        different = [
            f"{key}={state[key]!r} (this dataset: {mine[key]!r})"
            for key in ("num_samples", "seed", "batch_size", "shuffle")
            if key in state and state[key] != mine[key]
        ]
        if different:
            raise ValueError(
                "This state comes from a different dataset: "
                + ", ".join(different)
                + ". Its epochs hold different batches, so the stream cannot continue here. "
                "Build the dataset with the same data, seed, batch_size and shuffle."
            )
        position, epoch = int(state["position"]), int(state["epoch"])
        if not 0 <= position <= len(self) or epoch < 0:
            raise ValueError(
                f"State epoch={epoch}, position={position} is out of range: an epoch of this "
                f"dataset has {len(self)} batches."
            )
        self._epoch, self._position = epoch, position

    def epoch_callback(self) -> keras.callbacks.Callback:
        """A Keras callback that makes this dataset serve Keras's epoch number.

        ``fit`` numbers epochs from ``initial_epoch``; ``keras.callbacks.BackupAndRestore``
        restores that number after a crash. With this callback, epoch ``k`` of ``fit`` is
        always this dataset's epoch ``k``, so a resumed run sees exactly the batches the
        uninterrupted run would have seen. Pass ``shuffle=False`` to ``fit`` too: Keras's
        own shuffle only reorders whole batches (this dataset already shuffles samples), and
        it draws from Python's global random state, which a restart does not restore.

        Example:

        ```python
        model.fit(
            ds, epochs=10, shuffle=False,
            callbacks=[keras.callbacks.BackupAndRestore("backup"), ds.epoch_callback()],
        )
        ```
        """
        return _EpochSync(self)

    @property
    def num_workers(self) -> int:
        """How many threads or processes gather each batch (the ``workers`` argument)."""
        return self._gatherer.workers

    @property
    def use_processes(self) -> bool:
        """Whether the workers are processes (the ``use_multiprocessing`` argument)."""
        return self._gatherer.use_multiprocessing

    def close(self) -> None:
        """Stops the worker threads or processes; they restart if more batches are read."""
        self._gatherer.close()

    @property
    def input_structure(self) -> Group:
        """How the inputs are packed: one array, a tuple, or a dict (with its keys)."""
        return self._inputs

    @property
    def target_structure(self) -> Group | None:
        return self._targets

    @property
    def weight_structure(self) -> Group | None:
        return self._weights

    def check(self, model: keras.Model) -> None:
        """Checks that this dataset fits ``model``'s inputs (and outputs).

        Compares the number, order or names, per-sample shapes and integer/float kind of
        the inputs with ``model.inputs``, and the number or names of targets with
        ``model.outputs``.

        Raises:
            ValueError: One error listing every mismatch and how to fix it.
        """
        from multimodal_dataset.compatibility import check_model

        check_model(self, model)

    def __repr__(self) -> str:
        specs = ", ".join(_describe(f.spec) for g in self._groups for f in g.fields)
        return (
            f"MultimodalDataset({specs}; {self.num_samples} samples, "
            f"batch_size={self.batch_size}, {len(self)} batches, shuffle={self.shuffle}, "
            f"seed={self.seed}, epoch={self.epoch})"
        )


def _describe(spec: ArraySpec) -> str:
    return f"{spec.name}: {spec.sample_shape} {spec.dtype}"


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(
            f"batch_size must be a positive integer; got {batch_size!r} of type "
            f"{type(batch_size).__name__}."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got batch_size={batch_size}.")
    return int(batch_size)


def _weights_group(sample_weights: Any, inputs: Group, floatx: str) -> Group:
    group = make_group(sample_weights, "sample_weights", floatx)
    if group.kind != "single":
        raise TypeError(
            "sample_weights must be one array of per-sample weights, shape (n,) or "
            f"(n, timesteps); got a {group.kind} of {len(group.fields)} arrays."
        )
    field = group.fields[0]
    if field.array.ndim > 2:
        hint = ""
        if inputs.kind == "single":
            hint = (
                " If you meant it as a model input, note that MultimodalDataset(a, b, c) reads "
                "b as targets and c as sample_weights: pass the inputs as one tuple, "
                "MultimodalDataset((a, b, c), targets=y)."
            )
        raise ValueError(
            f"sample_weights must have shape (n,) or (n, timesteps); got shape "
            f"{field.array.shape}.{hint}"
        )
    # Weights scale a loss: always floating, whatever the array's dtype.
    return Group(
        "single", (dataclasses.replace(field, dtype=np.dtype(floatx), check_int32_range=False),)
    )


def _common_length(groups: tuple[Group, ...]) -> int:
    lengths = {f.name: len(f.array) for g in groups for f in g.fields}
    distinct = set(lengths.values())
    if len(distinct) > 1:
        listing = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(
            "Every array must have the same number of samples (its first dimension), but "
            f"{listing}. Make sure each sample has one entry in every array."
        )
    num_samples = distinct.pop()
    if num_samples == 0:
        names = ", ".join(lengths)
        raise ValueError(f"The dataset has zero samples ({names} are empty); give at least one.")
    return num_samples


def _check_keras_takes_py_datasets_across_processes() -> None:
    """Keras 3.8 to 3.10 refuse every input but ``tf.data.Dataset`` under a multi-process
    distribution (3.11 lifted that): say so, with the fix, before anything is read."""
    distribution = keras.distribution.distribution()
    if distribution is None or not getattr(distribution, "_is_multi_process", False):
        return
    if keras_version() >= (3, 11):
        return
    raise ValueError(
        f"Keras {keras.version()} trains a multi-process keras.distribution only from a "
        "tf.data.Dataset: its fit, evaluate and predict refuse every PyDataset there. "
        "Keras 3.11 lifted that: upgrade (pip install 'keras>=3.11'), or train in one "
        "process (several devices of one process work with every Keras)."
    )


def keras_version() -> tuple[int, int]:
    """The installed Keras's ``(major, minor)``, e.g. ``(3, 16)`` for 3.16.0.dev..."""
    major, minor = (int(part) for part in keras.version().split(".")[:2])
    return major, minor


def _shard_layout() -> tuple[int, int, bool]:
    """``(index, count, by_keras)`` for ``shard=None``: this process's data shard under
    the active keras.distribution, and whether Keras applies it itself."""
    keras_index, keras_count = keras_shards_py_datasets()
    if keras_count > 1:
        return keras_index, keras_count, True
    return (*distribution_shard(), False)


def distribution_shard() -> tuple[int, int]:
    """``(index, count)`` of this process's data shard under the active keras.distribution.

    One shard when no distribution is set or it runs in one process. Works with every
    supported Keras: 3.8 keeps the process count and id in private attributes.
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 0, 1
    processes = int(getattr(distribution, "num_processes", None) or _backend_processes()[0])
    if processes <= 1:
        return 0, 1
    if hasattr(distribution, "data_shard_id"):
        try:
            replicas = int(distribution.num_model_replicas)
        except (NotImplementedError, AttributeError):
            replicas = processes
        count = processes if replicas >= processes else replicas
        return int(distribution.data_shard_id), count
    return _backend_processes()[1], processes


def _backend_processes() -> tuple[int, int]:
    """``(process count, process id)`` from Keras's backend (Keras 3.8)."""
    from keras.src.backend import distribution_lib

    return int(distribution_lib.num_processes()), int(distribution_lib.process_id())


def keras_shards_py_datasets() -> tuple[int, int]:
    """``(data shard id, shard count)`` that Keras itself applies to every ``PyDataset``
    under the active distribution, or ``(0, 1)`` where it does not.

    Keras 3.16 (keras-nightly) takes batch indices ``range(shard_id, num_batches,
    num_shards)`` when the distribution's ``auto_shard_dataset`` is true; 3.15 and older
    never shard a ``PyDataset`` (3.15 refuses it in a multi-process run with
    auto-sharding, 3.8 feeds it as is).
    """
    distribution = keras.distribution.distribution()
    if distribution is None or not getattr(distribution, "auto_shard_dataset", False):
        return 0, 1
    if not _keras_shards_py_datasets():
        return 0, 1
    try:
        count = int(distribution.num_data_shards)
        index = int(distribution.data_shard_id)
    except (AttributeError, NotImplementedError):
        return 0, 1
    return (index, count) if count > 1 else (0, 1)


@functools.cache
def _keras_shards_py_datasets() -> bool:
    """Whether the installed Keras's ``PyDatasetAdapter`` shards datasets itself
    (feature-detected: its worker queue takes ``num_data_shards``)."""
    try:
        from keras.src.trainers.data_adapters import py_dataset_adapter
    except ImportError:
        return False
    enqueuer = getattr(py_dataset_adapter, "OrderedEnqueuer", None)
    if enqueuer is None:
        return False
    try:
        return "num_data_shards" in inspect.signature(enqueuer).parameters
    except (TypeError, ValueError):
        return False


class _EpochSync(keras.callbacks.Callback):  # type: ignore[misc]
    """Sets the dataset's epoch to Keras's epoch number at the start of every epoch."""

    def __init__(self, dataset: MultimodalDataset) -> None:
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.dataset.set_state(dict(self.dataset.get_state(), epoch=epoch, position=0))
