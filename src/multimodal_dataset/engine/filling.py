"""`fill_caches`: decode every image of a dataset into its cache ahead of training, with
every core (``ds.fill_cache()`` and ``multimodal-dataset cache``).

Each worker process receives the image source once (pickled, as for the dataset's own
worker processes) and takes chunks of samples in index order (files in table order
read sequentially): it checks which the cache holds (taking each image's identity, a
file's or object's, there and not up front in this process) and decodes the others with
one decoding thread, so ``workers`` processes use ``workers`` cores. Chunks are ranges,
submitted a few per process at a time: nothing in this process grows with the number of
samples. Records are written into the shared memory-mapped files (see ``decoded_cache``);
token ids are cached when the text source is built, so there is nothing to fill for them.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from multimodal_dataset._utils.processes import spawn_context
from multimodal_dataset.batching.structure import Field
from multimodal_dataset.engine.gathering import ProcessThreads
from multimodal_dataset.engine.pools import WorkerPool
from multimodal_dataset.sources.protocol import Cached

#: Samples per task: large enough to amortize a task, small enough to balance the cores.
CHUNK = 128
#: With ``workers=None``, processes are started only for at least this many images per
#: core: starting one (a fresh interpreter importing the library) costs about as much as
#: decoding a thousand small JPEGs, and fewer are decoded as fast by this process's
#: decoding threads, which use every core too (Pillow releases the GIL).
PER_PROCESS = 1000

# In worker processes: the source being filled, set once by the pool initializer.
_SOURCE: Any = None


def _init(source: Any) -> None:
    global _SOURCE
    source.num_threads = 1  # one core per process
    _SOURCE = source


def _fill(span: tuple[int, int]) -> tuple[int, list[tuple[int, str]]]:
    return fill_span(_SOURCE, span)


def fill_span(
    source: Any, span: tuple[int, int], executor: Any = None, threads: int = 1
) -> tuple[int, list[tuple[int, str]]]:
    """Fills the samples ``[start, stop)`` not cached yet: how many were, and the ones
    that failed."""
    indices = np.arange(*span, dtype=np.int64)
    pending = source.uncached(indices)
    failed: list[tuple[int, str]] = (
        source.fill_cache(pending, executor, threads) if len(pending) else []
    )
    return len(indices) - len(pending), failed


def spans(count: int, size: int = CHUNK) -> Iterator[tuple[int, int]]:
    """``[0, count)`` in ranges of ``size``."""
    return ((start, min(start + size, count)) for start in range(0, count, size))


@dataclasses.dataclass
class FillReport:
    """What filling one field's cache did.

    Attributes:
        field: The dataset field (``"inputs[0]"``).
        samples: How many samples the source has.
        already: How many were cached before.
        seconds: How long filling took.
        failed: ``(sample, what was wrong)`` of the images that could not be decoded
            (left out of the cache; training reports them by its ``on_error``).
    """

    field: str
    samples: int
    already: int
    seconds: float
    failed: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        decoded = self.samples - self.already - len(self.failed)
        rate = decoded / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"{self.field}: {self.samples:,} images, {decoded:,} decoded now ({rate:,.0f}/s), "
            f"{self.already:,} already cached"
        )
        if self.failed:
            why = self.failed[0][1]
            text += f"; {len(self.failed)} could not be decoded (the first: {why})"
        return text


def fill_caches(
    fields: Sequence[Field],
    workers: int | WorkerPool | None = None,
    decoding: ProcessThreads | None = None,
) -> list[FillReport]:
    """Decodes into its cache every image not cached yet, of every field with a cache.

    Args:
        fields: The dataset's fields.
        workers: Processes to decode in; 1 decodes in this process's decoding threads;
            None uses a process per core when there are enough images to repay starting
            them (see `PER_PROCESS`), else this process's threads. Or a `WorkerPool`
            (Ray actors) whose workers each take spans of samples, as processes do.
    """
    cores = os.cpu_count() or 1
    reports = []
    for f in fields:
        if not isinstance(f.array, Cached) or f.array.cache is None:
            continue
        source, start = f.array, time.perf_counter()
        count = len(source)
        already, failed = 0, list[tuple[int, str]]()
        if isinstance(workers, WorkerPool):
            running = workers.start_filling(source)
            try:
                for cached, bad in running.fill(spans(count)):
                    already += cached
                    failed += bad
            finally:
                running.shutdown()
            reports.append(FillReport(f.name, count, already, time.perf_counter() - start, failed))
            continue
        processes = workers or (cores if count >= PER_PROCESS * cores else 1)
        if processes < 2:
            for span in spans(count):
                executor = decoding.executor() if decoding is not None else None
                threads = decoding.threads if decoding is not None else 1
                cached, bad = fill_span(source, span, executor, threads)
                already += cached
                failed += bad
        else:
            context = spawn_context()  # spawned: safe beside any backend's threads
            processes = min(processes, -(-count // CHUNK))
            with ProcessPoolExecutor(
                processes, mp_context=context, initializer=_init, initargs=(source,)
            ) as pool:
                for cached, bad in bounded_map(pool, _fill, spans(count), 4 * processes):
                    already += cached
                    failed += bad
        seconds = time.perf_counter() - start
        reports.append(FillReport(f.name, count, already, seconds, failed))
    return reports


def bounded_map(
    pool: Executor, function: Callable[[Any], Any], items: Iterable[Any], in_flight: int
) -> Iterator[Any]:
    """``pool.map(function, items)`` in order, with at most ``in_flight`` tasks submitted
    at once (``Executor.map`` submits every item up front)."""
    pending: collections.deque[Future[Any]] = collections.deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
