"""`MultimodalDataset`: a `keras.utils.PyDataset` over several arrays per sample."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import keras

from multimodal_dataset._utils.checks import check_int
from multimodal_dataset.batching.cursor import EpochCursor
from multimodal_dataset.batching.layout import BatchLayout
from multimodal_dataset.batching.sampler import BatchPlan
from multimodal_dataset.batching.sharding import check_distribution_unchanged, resolve_shards
from multimodal_dataset.batching.view import BatchingView
from multimodal_dataset.diagnostics.inspection import Inspection
from multimodal_dataset.diagnostics.monitoring import StatsLog
from multimodal_dataset.diagnostics.replacements import ReplacementLog
from multimodal_dataset.diagnostics.truncation import TruncationLog
from multimodal_dataset.engine.filling import FillReport, fill_caches
from multimodal_dataset.engine.gatherer import Gatherer
from multimodal_dataset.engine.keras_loop import (
    called_by_keras_reset,
    reads_ahead,
    warn_read_ahead_lost,
)
from multimodal_dataset.engine.parallelism import Parallelism, ParallelismReport
from multimodal_dataset.engine.pools import WorkerPool
from multimodal_dataset.engine.prefetcher import Prefetcher
from multimodal_dataset.engine.producer import ProducedBatch, Producer

#: Batches produced ahead by default when an input is a `Source`.
PREFETCH = 2

if TYPE_CHECKING:
    pass


class MultimodalDataset(BatchingView, Inspection, keras.utils.PyDataset):  # type: ignore[misc]
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
            Keras shards ``PyDataset`` s itself (see `multimodal_dataset.batching.sharding`);
            ``(0, 1)`` reads everything.
        workers: How many worker threads (or processes) gather each batch's samples. They
            run inside the dataset and Keras reads it from its main thread (``ds.workers``
            is 1), because Keras's own pool serves batches of one epoch in the next (see
            ``multimodal_dataset.engine.gatherer``); ``ds.num_workers`` is your value. Workers pay
            off for sources that decode files, not for in-memory arrays. Or a `WorkerPool`
            whose workers produce whole batches elsewhere, such as
            ``multimodal_dataset.ray.RayWorkers(num_actors=8)`` (Ray actors, on a cluster
            too): up to ``prefetch`` batches in flight, served in order.
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
            gathered in microseconds, less than handing a batch to a thread costs); with
            a `WorkerPool`, one per worker (at least 2), to keep every worker busy.
        threads_per_worker: Decoding threads in each process that gathers, shared by its
            image sources (Pillow and simplejpeg decode in parallel). None (the default):
            the machine's cores, at most 8, divided among worker processes. See
            `describe_parallelism` for everything a configuration starts.
        io_requests: Storage requests in flight in each process that gathers, shared by
            the sources that read remote storage. None (the default): 64.

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
        workers: int | WorkerPool = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        group_by_length: bool | int | str = False,
        prefetch: int | None = None,
        threads_per_worker: int | None = None,
        io_requests: int | None = None,
    ) -> None:
        # Keras's own worker pool serves stale batches across epochs (engine/gatherer.py),
        # so Keras iterates this dataset in its main thread and the workers run here.
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
        self._shard_given = shard is not None
        self._shards = resolve_shards(shard)
        self._sampler = self._layout.sampler(
            batch_size, shuffle, seed, drop_remainder, pad_remainder, self._shards, group_by_length
        )
        fields, keras_shards = self._layout.fields, self._shards[2]
        self._cursor = EpochCursor(self.process_batches, in_order=not keras_shards)
        self._replacements = ReplacementLog()
        self._truncations = TruncationLog(fields)
        self._stats = StatsLog(fields)
        if prefetch is None and isinstance(workers, WorkerPool):  # one batch per worker
            prefetch = max(PREFETCH, workers.num_workers)
        elif prefetch is None:  # in-memory arrays are gathered in microseconds: not worth it
            prefetch = 0 if all(f.in_memory for f in fields) else PREFETCH
        self._parallelism = Parallelism.make(
            workers, use_multiprocessing, threads_per_worker, prefetch, io_requests
        )
        self._gatherer = Gatherer(fields, self._parallelism)
        prefetch = self._parallelism.prefetch
        self._producer = Producer(self._layout, self._gatherer)
        self._prefetcher = Prefetcher(self._producer, prefetch) if prefetch else None

    # ----------------------------------------------------------------- PyDataset protocol

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        """Batch ``index`` of the current epoch: ``(x,)``, ``(x, y)`` or ``(x, y, w)``.

        While Keras runs an epoch, the ``k``-th request of the epoch is batch ``k``
        whatever ``index`` Keras asks for (see the class docstring), unless Keras shards
        the dataset itself.
        """
        start = time.perf_counter()
        position = self._sampler.check_index(index)
        sampler, cursor = self._sampler, self._cursor
        in_epoch = in_order = cursor.in_epoch
        if in_epoch:
            if cursor.read_whole:  # read whole: the next epoch begins
                self._finish_epoch()
            in_order = cursor.in_order
            position = cursor.serve(position, reads_ahead())
        plan = sampler.plan(cursor.epoch, position)
        try:
            with self._gatherer.serving():  # not while the pools are being released
                if in_order and self._prefetcher is not None:
                    upcoming = (
                        sampler.plan(cursor.epoch, later)
                        for later in range(position + 1, sampler.num_batches)
                    )
                    produced = self._prefetcher.get(plan, upcoming)
                else:
                    produced = self._producer.produce(plan)
        except BaseException:
            # fit ends here without an on_epoch_end: release the pools unless a batch follows.
            self._gatherer.release_soon()
            raise
        if produced.replaced:
            self._replacements.record(plan, produced.replaced)
        if produced.truncated:
            self._truncations.record(plan, produced.truncated)
        cursor.served_batch(position)
        step = cursor.served - 1 if in_epoch else None  # its place in the Keras epoch
        self._stats.record(start, len(plan.indices), produced.seconds, step, produced.produce_s)
        return produced.batch

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
        self._cursor.begin()

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
        (``on_error="replace"``), counting them; ``ds.replacements`` lists the first 1,000
        of each epoch. Warns
        with a `TruncatedTextWarning` if the epoch served texts longer than their input's
        largest bucket (``TextTokens(buckets=...)``), naming the samples. Releases the
        worker pools if no batch follows within ``workers.KEEP_ALIVE_S`` seconds.
        """
        cursor = self._cursor
        if called_by_keras_reset():
            # Reads since the last Keras epoch (to build the model; on TensorFlow also to
            # infer the signature) are no training: not counted, and served again.
            self._stats.rewind()
            if cursor.rewind():
                warn_read_ahead_lost(self.epoch, cursor.served, self.process_batches)
        elif not cursor.in_epoch or cursor.read_whole:
            self._finish_epoch()
        self._stats.mark()
        cursor.end()
        self._gatherer.release_soon()

    def _finish_epoch(self) -> None:
        """Reports the epoch that was read and moves to the next one's order."""
        epoch = self._cursor.epoch
        self._replacements.report(epoch)
        self._truncations.report(epoch)
        self._stats.finish(epoch)
        if self._prefetcher is not None:
            self._prefetcher.discard()
        self._cursor.advance()

    def fill_cache(self, workers: int | WorkerPool | None = None) -> list[FillReport]:
        """Decodes every image not cached yet into its source's cache (``cache=``), with
        ``workers`` processes (None: every core) or a `WorkerPool` such as
        ``multimodal_dataset.ray.RayWorkers`` (a cluster filling a shared cache folder),
        before training rather than during the first epoch. The epoch and its order are
        unchanged.

        Returns:
            One `FillReport` per image source with a cache (printable), naming the images
            that could not be decoded.
        """
        with self._gatherer.serving():  # no release of the sources meanwhile
            return fill_caches(self._layout.fields, workers, self._gatherer.shared.decoding)

    @property
    def num_workers(self) -> int:
        """How many threads or processes gather each batch (the ``workers`` argument)."""
        return self._gatherer.workers

    @property
    def use_processes(self) -> bool:
        """Whether the workers are processes (the ``use_multiprocessing`` argument)."""
        return self._gatherer.use_multiprocessing

    def describe_parallelism(self) -> ParallelismReport:
        """The threads and processes this dataset starts, and what each is for (print it).

        Every pool is the dataset's: ``workers`` threads or processes share each batch;
        each process that gathers has ``threads_per_worker`` decoding threads and
        ``io_requests`` storage requests in flight that its sources share; ``prefetch``
        threads produce the next batches. The release timer stops them all when no batch
        follows an epoch.
        """
        return self._parallelism.describe(self._layout.fields)

    def _serve(self, plan: BatchPlan) -> ProducedBatch:
        with self._gatherer.serving():  # not while the pools are being released
            return self._producer.produce(plan)

    def _released(self) -> None:
        self._gatherer.release_soon()

    def _discard_prefetched(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.discard()

    def close(self) -> None:
        """Stops the worker threads or processes; they restart if more batches are read."""
        self._gatherer.close()

    def __del__(self) -> None:
        # A dataset nobody references (one per fit of a hyper-parameter search) releases
        # its pools now, not when their keep-alive timer fires.
        gatherer = self.__dict__.get("_gatherer")
        if gatherer is not None:
            gatherer.abandon()
