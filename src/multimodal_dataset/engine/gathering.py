"""Gathering one batch's samples from every field, in the calling thread or in a worker
process: the arrays, what the sources reported, and each field's seconds (`Gathered`).

In a worker process the fields come once, through the pool's initializer; an exception
that would not survive the way back (it does not pickle) is sent as a `WorkerError` with
its type, message and traceback.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset._utils.picklable import Picklable
from multimodal_dataset.batching.structure import Field
from multimodal_dataset.io.storage import MAX_IO_THREADS, Requests
from multimodal_dataset.sources.protocol import GatherContext, Replacement


@dataclasses.dataclass(slots=True)
class Gathered:
    """What gathering a batch (or a worker's share of it) gave.

    Attributes:
        arrays: One array per field, the samples in batch order.
        replaced: The samples sources replaced (``on_error="replace"``).
        truncated: ``(field, samples)`` for each field whose source cut texts to its
            largest bucket in this batch.
        seconds: The seconds each field took (summed over the workers sharing the batch).
    """

    arrays: list[np.ndarray]
    replaced: list[Replacement]
    truncated: list[tuple[str, list[int]]]
    seconds: list[float]

    @classmethod
    def joined(cls, parts: Sequence[Gathered]) -> Gathered:
        """The parts of one batch, gathered by several workers, in batch order."""
        arrays = [np.concatenate(a) for a in zip(*(p.arrays for p in parts), strict=True)]
        seconds = [sum(s) for s in zip(*(p.seconds for p in parts), strict=True)]
        truncated: dict[str, list[int]] = {}
        for part in parts:
            for name, samples in part.truncated:
                truncated.setdefault(name, []).extend(samples)
        replaced = [r for p in parts for r in p.replaced]
        return cls(arrays, replaced, list(truncated.items()), seconds)


class WorkerError(RuntimeError):
    """A worker process died, or raised an exception that could not be sent back intact."""


class ProcessThreads(Picklable):
    """A pool of threads of one process, shared by its sources (started on first use; a
    forked or unpickled copy starts its own in its process): the decoding threads, the
    threads that carry storage requests.

    Args:
        threads: How many.
        purpose: Names the threads (``multimodal_dataset_<purpose>_N``).
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_pool": lambda: None,
        "_lock": threading.Lock,
    }

    def __init__(self, threads: int, purpose: str = "decode") -> None:
        self.threads = threads
        self.purpose = purpose
        self._pool: tuple[int, ThreadPoolExecutor] | None = None
        self._lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor | None:
        """The pool (None with a single thread: decode in the calling one)."""
        if self.threads < 2:
            return None
        pool = self._pool
        if pool is not None and pool[0] == os.getpid():
            return pool[1]
        with self._lock:
            if self._pool is None or self._pool[0] != os.getpid():
                executor = ThreadPoolExecutor(self.threads, f"multimodal_dataset_{self.purpose}")
                self._pool = (os.getpid(), executor)
            return self._pool[1]

    def close(self, wait: bool = True) -> None:
        """Stops the threads (they start again when needed)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and pool[0] == os.getpid():
            pool[1].shutdown(wait=wait)


@dataclasses.dataclass(frozen=True)
class SharedThreads:
    """What the sources of one process share: decoding threads, and the storage
    requests in flight with the threads that carry them (see `Parallelism`)."""

    decoding: ProcessThreads
    io: ProcessThreads
    requests_in_flight: int

    @classmethod
    def make(cls, threads: int, requests: int) -> SharedThreads:
        io = ProcessThreads(min(requests, MAX_IO_THREADS), "io")
        return cls(ProcessThreads(threads), io, requests)

    def requests(self) -> Requests:
        return Requests(self.io.executor(), self.requests_in_flight)

    def close(self, wait: bool = True) -> None:
        self.decoding.close(wait)
        self.io.close(wait)


# In worker processes: the fields to gather from and the process's shared threads, set
# once by the pool initializer.
_PROCESS_FIELDS: tuple[Field, ...] = ()
_PROCESS_SHARED = SharedThreads.make(1, 1)


def init_process(fields: tuple[Field, ...], threads: int, requests: int) -> None:
    global _PROCESS_FIELDS, _PROCESS_SHARED
    _PROCESS_FIELDS = fields
    _PROCESS_SHARED = SharedThreads.make(threads, requests)


#: The context of the sources that read none (`Source.reads_context` False).
_UNREAD = GatherContext()


def gather_fields(
    fields: Sequence[Field],
    seed: int,
    epoch: int,
    indices: np.ndarray,
    widths: Sequence[int | None] | None = None,
    shared: SharedThreads | None = None,
) -> Gathered:
    """One array per field, holding the samples ``indices`` in that order, with what the
    sources reported (replaced samples, truncated texts) and each field's gathering time;
    ``widths`` gives each variable-length field's padded length (see ``padding``), and
    ``shared`` the threads the sources share (decoding, storage requests)."""
    arrays, replaced, truncated, seconds = [], [], [], []
    clock = time.perf_counter
    for k, field in enumerate(fields):
        start = clock()
        source = field.array
        if not (source.reads_context or field.checked):  # an ArraySource (the hot path)
            arrays.append(source.gather(indices, _UNREAD))
            seconds.append(clock() - start)
            continue
        width = widths[k] if widths is not None else None
        context = GatherContext(field.name, seed, epoch, width=width)
        if shared is not None:
            if source.decodes_in_threads:
                context.executor, context.threads = (
                    shared.decoding.executor(),
                    shared.decoding.threads,
                )
            if source.reads_remotely():
                context.requests = shared.requests()
        arrays.append(field.gather(indices, context))
        seconds.append(clock() - start)
        if context.replaced:
            replaced += [Replacement(epoch, s, field.name, r) for s, r in context.replaced]
        if context.truncated:
            truncated.append((field.name, context.truncated))
    return Gathered(arrays, replaced, truncated, seconds)


def gather_in_process(
    seed: int, epoch: int, widths: Sequence[int | None] | None, indices: np.ndarray
) -> Gathered:
    try:
        return gather_fields(_PROCESS_FIELDS, seed, epoch, indices, widths, _PROCESS_SHARED)
    except Exception as error:
        raise sendable(error) from None


def sendable(error: Exception) -> Exception:
    """``error`` if it survives pickling (how it reaches the parent), else a `WorkerError`
    with its type, message and traceback: an exception that cannot be unpickled would
    break the whole pool and lose the message."""
    try:
        copy = pickle.loads(pickle.dumps(error))
        if type(copy) is type(error) and str(copy) == str(error):
            return error
    except Exception:
        pass
    kind = f"{type(error).__module__}.{type(error).__qualname__}"
    trace = "".join(traceback.format_exception(error)).rstrip()
    return WorkerError(
        f"A worker process raised {kind}: {error}\n(The exception could not be sent to the "
        f"main process as it is, because it does not pickle.)\n\nWorker traceback:\n{trace}"
    )
