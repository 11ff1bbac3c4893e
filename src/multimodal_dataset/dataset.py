"""`MultimodalDataset`: a `keras.utils.PyDataset` over several arrays per sample."""

from __future__ import annotations

import copy
import functools
import os
import sys
import threading
import time
import types
import warnings
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from multimodal_dataset.checks import check_int
from multimodal_dataset.distribution import check_distribution_unchanged, resolve_shards
from multimodal_dataset.filling import FillReport, fill_caches
from multimodal_dataset.layout import BatchLayout, grouping_lengths
from multimodal_dataset.model_check import check_model
from multimodal_dataset.monitoring import InputMonitor, StatsLog
from multimodal_dataset.padding import Padding
from multimodal_dataset.prefetch import Prefetcher
from multimodal_dataset.replacements import ReplacementLog
from multimodal_dataset.resume import EpochSync, checked_state
from multimodal_dataset.sampling import Sampler, check_seed, draw_seed
from multimodal_dataset.truncation import TruncationLog
from multimodal_dataset.workers import Gatherer

#: Batches produced ahead by default when an input is a `Source`.
PREFETCH = 2

if TYPE_CHECKING:
    from multimodal_dataset.sources.protocol import Replacement
    from multimodal_dataset.structure import ArraySpec, Group


class PartialEpochWarning(UserWarning):
    """A Keras call started in the middle of an epoch whose read-ahead batches (tf.data
    on TensorFlow) were not all trained on; see `MultimodalDataset.on_epoch_end`."""


class MultimodalDataset(keras.utils.PyDataset):  # type: ignore[misc]
    """Batches of several inputs (and targets, and sample weights) for ``model.fit``.

    Every batch has the structure Keras expects on every backend (see `BatchLayout`):
    ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, ``x`` one array, a tuple in the
    model's input order, or a dict keyed by ``keras.Input`` names; floats as ``floatx``,
    integers as ``int32``, cast per batch.

    The order is a pure function of ``(seed, epoch)``, shuffled per sample: every sample
    once per epoch, identically on every backend and worker mode. The epoch advances in
    ``on_epoch_end`` (Keras calls it after every epoch and once before training). While
    Keras runs an epoch, the ``k``-th batch it asks for is batch ``k``, whatever index it
    asks with: Keras 3.15 and older reorder batch requests with Python's unseeded
    ``random`` under ``fit(shuffle=True)``, which would make runs differ. Outside an
    epoch (your own loops), ``ds[i]`` is batch ``i``.

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
            epoch's global order. ``None`` (the default) takes the data shard of the active
            ``keras.distribution``, or lays the batches out for Keras's own sharding where
            Keras shards ``PyDataset`` s itself (see `multimodal_dataset.distribution`);
            ``(0, 1)`` reads everything.
        workers: How many worker threads (or processes) gather each batch's samples. They
            run inside the dataset and Keras reads it from its main thread (``ds.workers``
            is 1), because Keras's own pool serves batches of one epoch in the next (see
            ``multimodal_dataset.workers``); ``ds.num_workers`` is your value. Workers pay
            off for sources that decode files, not for in-memory arrays.
        use_multiprocessing: Gather in worker processes instead of threads, started with
            the default multiprocessing start method (fork or spawn); the dataset pickles.
        max_queue_size: Passed to ``keras.utils.PyDataset`` (Keras queues nothing for a
            dataset it reads in its main thread).
        group_by_length: Put samples of similar length in the same batch, so that a
            variable-length input (``TextTokens(buckets=...)``) is padded little: the
            samples are shuffled, grouped by the bucket they need within windows of
            several steps, each bucket's samples cut into whole steps (the few left over
            join the next window), and the steps shuffled; still exactly once per epoch
            and a pure function of ``(seed, epoch)``. True groups by the one variable-length input;
            with several, pass its name (a dict key) or position.
        prefetch: While Keras runs an epoch, how many of the next batches to produce in
            background threads (up to that many at once) while the training step runs
            (see ``prefetch``); 0 produces
            each batch when Keras asks for it. Memory: that many batches at most; what an
            epoch did not serve is dropped at its end. None (the default): 2 when an input
            is a `Source` (files to read, images to decode), else 0 (arrays in memory are
            gathered in microseconds, less than handing a batch to a thread costs).

    Raises:
        ValueError: For arrays of unequal length, no samples, 0-d arrays, a batch size
            that is not a positive integer, or sample weights without targets.
        TypeError: For arrays whose dtype a model cannot consume (strings, objects,
            complex numbers) and structures nested more than one level.
    """

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
        group_by_length: bool | int | str = False,
        prefetch: int | None = None,
    ) -> None:
        # Keras's own worker pool serves stale batches across epochs (see workers.py), so
        # Keras iterates this dataset in its main thread and the workers run here.
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=max_queue_size)
        batch_size = check_int(batch_size, "batch_size")
        self._layout = BatchLayout.build(
            inputs,
            targets,
            sample_weights,
            floatx=keras.config.floatx(),
            pad_remainder=pad_remainder,
            drop_remainder=drop_remainder,
        )
        num_samples = self._layout.num_samples
        seed = draw_seed() if seed is None else check_seed(seed)
        if shuffle is None:
            shuffle = self._layout.targets is not None
        if group_by_length is not False and not shuffle:
            raise ValueError(
                "group_by_length reorders the samples into batches of similar length, but "
                "shuffle=False keeps them in order (for predict). Pass shuffle=True, or "
                "leave group_by_length=False."
            )
        self._shard_given = shard is not None
        self._shards = resolve_shards(shard)
        shard_index, shard_count, keras_shards = self._shards
        fields = self._layout.fields
        padding = Padding(
            [(f.buckets, f.array.lengths) if f.buckets is not None else None for f in fields]
        )
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
            padding=padding,
            group_lengths=grouping_lengths(self._layout, group_by_length),
        )
        self._epoch = 0
        self._position = 0
        self._in_epoch = False  # between Keras's on_epoch_begin and on_epoch_end
        # Batches of the current epoch served in Keras's epochs: a Keras epoch cut short
        # by steps_per_epoch ends with the dataset's epoch unfinished, and the next one
        # continues it. `_begun_at` is where the Keras epoch began: the batches Keras
        # reads to build the model are served again (see `on_epoch_end`).
        self._served = 0
        self._begun_at = 0
        self._read_ahead = False  # whether another thread (tf.data) read this epoch
        self._replacements = ReplacementLog()
        self._truncations = TruncationLog(fields)
        self._stats = StatsLog(fields)
        self._gatherer = Gatherer(self._layout.fields, workers, use_multiprocessing)
        if prefetch is None:  # in-memory arrays are gathered in microseconds: not worth it
            prefetch = PREFETCH if any(f.is_source for f in fields) else 0
        prefetch = check_int(prefetch, "prefetch", minimum=0, what="batches produced ahead")
        self._prefetcher = Prefetcher(prefetch) if prefetch else None
        if self._prefetcher is not None:
            self._gatherer.close_with(self._prefetcher.close)

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
        start = time.perf_counter()
        position = self._sampler.check_index(index)
        sampler = self._sampler
        in_order = self._in_epoch and not sampler.serve_all_shards
        if self._in_epoch:
            if self._served >= self.process_batches:  # read whole: the next epoch begins
                self._finish_epoch()
            if in_order:
                position = self._served  # Keras's own batch shuffle is not reproducible
            self._served += 1
            if _keras_reads_ahead() or threading.current_thread() is not threading.main_thread():
                self._read_ahead = True
        produced: tuple[tuple[Any, ...], np.ndarray, list[Replacement], list[float], float]
        try:
            with self._gatherer.serving():  # not while the pools are being released
                if in_order and self._prefetcher is not None:
                    upcoming = range(position + 1, sampler.num_batches)
                    produced = self._prefetcher.get(self._produce, self._epoch, position, upcoming)
                else:
                    produced = self._produce(self._epoch, position)
        except BaseException:
            # fit ends here without an on_epoch_end: release the pools unless a batch follows.
            self._gatherer.release_soon()
            raise
        batch, indices, replaced, seconds, produce_s = produced
        if replaced:
            self._replacements.record(replaced)
        self._truncations.record(indices)
        self._position = max(self._position, position + 1)
        self._stats.record(
            start, len(indices), seconds, self._served - 1 if self._in_epoch else None, produce_s
        )
        return batch

    @property
    def process_batches(self) -> int:
        """How many batches Keras reads of each epoch in this process: ``len(ds)``, or this
        process's share of it when Keras shards the dataset itself (`sharded_by_keras`)."""
        sampler = self._sampler
        if sampler.serve_all_shards:
            return sampler.num_batches // sampler.shard_count
        return sampler.num_batches

    def _produce(
        self, epoch: int, position: int
    ) -> tuple[tuple[Any, ...], np.ndarray, list[Replacement], list[float], float]:
        """Batch ``position`` of ``epoch``, its samples, what sources replaced in it, each
        field's gathering seconds and the seconds it took; nothing recorded (it may be
        produced ahead, in another thread)."""
        start = time.perf_counter()
        sampler = self._sampler
        indices = sampler.batch(epoch, position)
        widths = sampler.widths(epoch, position)
        arrays, replaced, seconds = self._gatherer.gather(
            indices, sampler.seed, epoch, position, widths
        )
        real = sampler.real_count(position) if sampler.pad else None
        batch: tuple[Any, ...] = self._layout.pack(arrays, real)
        return batch, indices, replaced, seconds, time.perf_counter() - start

    def on_epoch_begin(self) -> None:
        """Keras calls this before each epoch: batches are then served in the dataset's own
        order, whatever order Keras requests them in, from where the last Keras epoch
        stopped (``fit(steps_per_epoch=k)`` with ``k < len(ds)`` continues the dataset's
        epoch, as Keras's own ``PyDataset`` does).

        Raises:
            ValueError: If the sharding the dataset was built for no longer matches the
                active ``keras.distribution`` (it was set after the dataset was built).
        """
        if not self._shard_given:
            check_distribution_unchanged(self._shards)
        self._in_epoch = True
        self._begun_at = self._served

    def on_epoch_end(self) -> None:
        """Advances to the next epoch's order once the current one was read whole.

        Keras calls this after every epoch, and once as ``fit``, ``evaluate`` and
        ``predict`` start, after reading a batch to build an unbuilt model (on
        TensorFlow it reads the first two batches to infer the output signature before
        that, outside any epoch). That first call is not an epoch: the batches read to
        build the model were not trained on, so they are served again as the epoch's
        first. When Keras's epoch ended before the dataset's (``steps_per_epoch`` below
        ``len(ds)``), the next Keras epoch continues the dataset's epoch: every sample
        once per dataset epoch, as with Keras's own ``PyDataset``. Called by you, outside
        Keras's epochs, it always advances.

        Warns with a `ReplacedSamplesWarning` if sources replaced samples in the epoch
        (``on_error="replace"``); every replacement is kept in ``ds.replacements``. Warns
        with a `TruncatedTextWarning` if the epoch served texts longer than their input's
        largest bucket (``TextTokens(buckets=...)``), naming the samples. Releases the
        worker pools if no batch follows within ``workers.KEEP_ALIVE_S`` seconds.
        """
        if _called_by_keras_reset():
            # Reads since the last Keras epoch (to build the model; on TensorFlow also to
            # infer the signature) are no training: not counted, and served again.
            self._stats.rewind()
            if self._in_epoch:
                self._served = self._begun_at
                self._position = min(self._position, self._begun_at)
            if 0 < self._served < self.process_batches and self._read_ahead:
                self._warn_read_ahead_lost()
        elif not self._in_epoch or self._served >= self.process_batches:
            self._finish_epoch()
        self._stats.mark()
        self._in_epoch = False
        self._gatherer.release_soon()

    def _warn_read_ahead_lost(self) -> None:
        warnings.warn(
            f"MultimodalDataset: a new fit, evaluate or predict starts in the middle of epoch "
            f"{self._epoch} ({self._served} of its {self.process_batches} batches read; the "
            "last one's steps_per_epoch was below len(ds)). Keras read those batches "
            "ahead of the training steps (tf.data on TensorFlow, a prefetch queue on JAX "
            "with Keras before 3.9), so some of them were never trained on; the epoch "
            "continues after them. To train on every "
            "sample exactly once per epoch, run the epochs in one call, "
            "fit(epochs=..., steps_per_epoch=...), or start each call at an epoch boundary "
            "(ds.set_state(dict(ds.get_state(), epoch=ds.epoch + 1, position=0))).",
            PartialEpochWarning,
            stacklevel=3,
        )
        self._read_ahead = False

    def _finish_epoch(self) -> None:
        """Reports the epoch that was read and moves to the next one's order."""
        self._replacements.report(self._epoch)
        self._truncations.report(self._epoch)
        self._stats.finish(self._epoch)
        if self._prefetcher is not None:
            self._prefetcher.discard()
        self._epoch += 1
        self._position = self._served = self._begun_at = 0
        self._read_ahead = False

    @property
    def stats(self) -> list[dict[str, Any]]:
        """Where each epoch's time went, one dict per epoch (oldest first), for logging.

        Always: ``epoch``, ``batches``, ``samples``, ``produce_s`` (seconds producing
        batches) and ``fields_s`` (seconds per field, e.g. ``{"inputs[0]": 4.1, ...}``;
        summed over the workers, so with several they may add up to more than
        ``produce_s``). With `monitor` in ``fit``'s callbacks also: ``steps``, ``train_s``
        (the epoch's training time, validation excluded), ``wait_s`` and ``wait_fraction``
        (how long the training loop waited for batches), ``input_bound`` (waiting took at
        least 20% of it) and ``summary`` (the line the monitor prints). The batches Keras
        reads before training (to build the model) are not counted.
        """
        return copy.deepcopy(self._stats.records)

    def monitor(self, verbose: bool = True) -> keras.callbacks.Callback:
        """A Keras callback that measures how long training waits for this dataset.

        At the end of every epoch it adds the waiting time to `stats` and, with
        ``verbose``, prints one line, e.g. ``epoch 3: input-bound: 63% of training time
        waiting for data; image decoding (inputs[0]) takes 81% of it; try workers=8 or
        cache='DIR' ...``. On JAX and PyTorch Keras reads the dataset in the training
        loop's thread, so all the time spent producing a batch is waited for; on
        TensorFlow a ``tf.data`` thread reads ahead, and a step waits only for a batch
        that was not ready when the step began.

        Example:

        ```python
        model.fit(ds, epochs=5, callbacks=[ds.monitor()])
        ds.stats[-1]["wait_fraction"]
        ```
        """
        return InputMonitor(self, verbose=verbose)

    def show_batch(self, n: int = 16, path: str | os.PathLike[str] | None = None) -> Any:
        """Draws ``n`` samples as the model receives them, to catch a wrong label, a bad
        crop or a broken tokenizer before training.

        The samples are the first ``n`` of the current epoch's order, gathered as ``fit``
        would (augmentation included) without counting as read: the epoch, the position
        and the epoch reports are unchanged. Each cell shows the image, the text decoded
        from its token ids (``[UNK]`` and ``[PAD]*n`` marked), the numbers (standardised,
        and the original values in brackets when the preprocessing knows them) and the
        label (with the class name where known; none for an inference dataset).

        Args:
            n: How many samples to draw (at most the dataset's).
            path: Where to write the grid as a PNG; None writes nothing.

        Returns:
            The matplotlib ``Figure`` (a notebook displays it).

        Raises:
            ImportError: Without matplotlib, with the install hint (the ``plot`` extra).
        """
        from multimodal_dataset.showing import draw_batch, joined

        n = min(check_int(n, "n", what="samples to draw"), self.num_samples)
        sampler = self._sampler
        parts: list[tuple[np.ndarray, list[np.ndarray]]] = []
        position = taken = 0
        while taken < n and position < len(self):
            indices = sampler.batch(self._epoch, position)
            widths = sampler.widths(self._epoch, position)
            with self._gatherer.serving():
                arrays, _, _ = self._gatherer.gather(
                    indices, sampler.seed, self._epoch, None, widths
                )
            parts.append((indices, arrays))
            taken += len(indices)
            position += 1
        self._gatherer.release_soon()
        indices = np.concatenate([p[0] for p in parts])[:n]
        arrays = [joined([p[1][k] for p in parts])[:n] for k in range(len(parts[0][1]))]
        return draw_batch(
            self._layout.fields,
            arrays,
            indices,
            num_inputs=len(self._layout.inputs.fields),
            class_names=self._class_names(),
            path=path,
        )

    def fill_cache(self, workers: int | None = None) -> list[FillReport]:
        """Decodes every image not cached yet into its source's cache (``cache=``), with
        ``workers`` processes (None: every core), before training rather than during the
        first epoch. The epoch and its order are unchanged.

        Returns:
            One `FillReport` per image source with a cache (printable), naming the images
            that could not be decoded.
        """
        with self._gatherer.serving():  # no release of the sources meanwhile
            return fill_caches(self._layout.fields, workers)

    def _class_names(self) -> list[Any] | None:
        """The names of the class ids, where the dataset knows them."""
        return None

    @property
    def replacements(self) -> list[Replacement]:
        """Every sample a source replaced so far (``on_error="replace"``), once per epoch."""
        return self._replacements.all

    # ----------------------------------------------------------------------- public API

    def batch_indices(self, index: int) -> np.ndarray:
        """The sample indices that make up batch ``index`` of the current epoch.

        Raises:
            IndexError: If ``index`` is not in ``[-len(ds), len(ds))``.
        """
        return self._sampler.batch(self._epoch, self._sampler.check_index(index))

    @property
    def element_spec(self) -> tuple[Any, ...]:
        """The structure of every batch with an `ArraySpec` per array, read from no data.

        For example ``((ArraySpec((None, 32, 32, 3), 'float32', 'inputs[0]'), ...),
        ArraySpec((None,), 'int32', 'targets'))``.
        """
        return self._layout.element_spec

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
        return self._shards[0], self._shards[1]

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
        epoch, position = checked_state(self.get_state(), state, len(self))
        if (epoch, position) != (self._epoch, self._position) and self._prefetcher is not None:
            self._prefetcher.discard()
        self._epoch, self._position = epoch, position
        self._served = self._begun_at = position

    def epoch_callback(self) -> keras.callbacks.Callback:
        """A Keras callback that makes this dataset serve Keras's epoch number.

        ``fit`` numbers epochs from ``initial_epoch``; ``keras.callbacks.BackupAndRestore``
        restores that number after a crash. With this callback, epoch ``k`` of ``fit`` is
        always this dataset's epoch ``k``, so a resumed run sees exactly the batches the
        uninterrupted run would have seen (``fit``'s own batch shuffle changes nothing: the
        dataset serves its own order).

        Example:

        ```python
        model.fit(
            ds, epochs=10,
            callbacks=[keras.callbacks.BackupAndRestore("backup"), ds.epoch_callback()],
        )
        ```
        """
        return EpochSync(self)

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

    def __del__(self) -> None:
        # A dataset nobody references (one per fit of a hyper-parameter search) releases
        # its pools now, not when their keep-alive timer fires.
        gatherer = self.__dict__.get("_gatherer")
        if gatherer is not None:
            gatherer.abandon()

    @property
    def layout(self) -> BatchLayout:
        """The groups of every batch (inputs, targets, weights) and how they are packed."""
        return self._layout

    @property
    def input_structure(self) -> Group:
        """How the inputs are packed: one array, a tuple, or a dict (with its keys)."""
        return self._layout.inputs

    @property
    def target_structure(self) -> Group | None:
        return self._layout.targets

    @property
    def weight_structure(self) -> Group | None:
        return self._layout.weights

    def check(self, model: keras.Model) -> None:
        """Checks that this dataset fits ``model``'s inputs (and outputs).

        Compares the number, order or names, per-sample shapes and integer/float kind of
        the inputs with ``model.inputs``, and the number or names of targets with
        ``model.outputs``.

        Raises:
            ValueError: One error listing every mismatch and how to fix it.
        """
        check_model(self._layout, model)

    def __repr__(self) -> str:
        specs = ", ".join(_describe(f.spec) for f in self._layout.fields)
        return (
            f"MultimodalDataset({specs}; {self.num_samples} samples, "
            f"batch_size={self.batch_size}, {len(self)} batches, shuffle={self.shuffle}, "
            f"seed={self.seed}, epoch={self.epoch})"
        )


@functools.cache
def _keras_reads_ahead() -> bool:
    """Whether Keras's training loop reads batches ahead in its own thread (the JAX
    trainer of older Keras prefetches two batches)."""
    if keras.backend.backend() != "jax":
        return False
    from keras.src.backend.jax import trainer

    return hasattr(trainer.JAXEpochIterator, "_prefetch_numpy_iterator")


def _called_by_keras_reset() -> bool:
    """Whether Keras's ``EpochIterator.reset`` called ``on_epoch_end`` (through the
    adapter): the call that starts ``fit``, ``evaluate`` and ``predict``, not an epoch."""
    frame: types.FrameType | None = sys._getframe(2)
    for _ in range(3):
        if frame is None:
            return False
        module = frame.f_globals.get("__name__", "")
        if frame.f_code.co_name == "reset" and module.startswith("keras"):
            return True
        frame = frame.f_back
    return False


def _describe(spec: ArraySpec) -> str:
    return f"{spec.name}: {spec.sample_shape} {spec.dtype}"
