"""`Parallelism`: every thread and process a dataset starts, decided in one place.

A dataset gathers each batch inline, or split over ``workers`` threads or processes. Every
process that gathers has one pool of decoding threads and one pool for storage requests,
shared by all its sources (they receive them in the gather context: a source owns no
pool); each prefetched batch is produced in a thread.
`Parallelism.describe` adds them up, so that ``workers=8`` processes with 8 decoding
threads each is visibly 72 threads, not a surprise. The `Gatherer` owns every one of these
pools and releases them together.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from multimodal_dataset._utils.checks import check_int
from multimodal_dataset.batching.structure import Field
from multimodal_dataset.engine.pools import WorkerPool
from multimodal_dataset.io.storage import MAX_IO_THREADS, MAX_REQUESTS

#: Decoding threads per gathering process at most, by default (Pillow and simplejpeg
#: release the GIL: more than this rarely pays on one machine).
MAX_DEFAULT_THREADS = 8


@dataclasses.dataclass(frozen=True)
class Parallelism:
    """How a dataset produces batches in parallel.

    Attributes:
        workers: Threads or processes that share each batch's samples (1: inline).
        use_processes: Whether the workers are processes.
        threads_per_worker: Decoding threads in each process that gathers, shared by
            its image sources.
        io_requests: Storage requests in flight in each process that gathers, shared by
            its remote sources (carried by up to `MAX_IO_THREADS` threads on a file
            system without an event loop of its own; S3, GCS and HTTP keep them in
            fsspec's loop).
        prefetch: Batches produced ahead, each in its own thread.
        pool: Workers outside this process that produce whole batches (`WorkerPool`,
            such as Ray actors), or None.
    """

    workers: int = 1
    use_processes: bool = False
    threads_per_worker: int = 1
    prefetch: int = 0
    io_requests: int = MAX_REQUESTS
    pool: WorkerPool | None = None

    @classmethod
    def make(
        cls,
        workers: int | WorkerPool,
        use_processes: bool,
        threads_per_worker: int | None,
        prefetch: int,
        io_requests: int | None = None,
    ) -> Parallelism:
        """Checks the arguments; ``threads_per_worker=None`` takes the machine's cores
        (at most `MAX_DEFAULT_THREADS`), divided among worker processes, or a pool's
        share per worker.

        Raises:
            TypeError, ValueError: For a count that is not a positive integer (``prefetch``
                may be 0), or a pool with ``use_multiprocessing``.
        """
        if isinstance(workers, WorkerPool):
            if use_processes:
                raise ValueError(
                    "use_multiprocessing=True does not apply to workers="
                    f"{type(workers).__name__}(...): its workers are processes already. "
                    "Leave use_multiprocessing out."
                )
            pool = workers
            threads = threads_per_worker or pool.threads_per_worker
            threads = check_int(threads, "threads_per_worker", what="decoding threads")
            prefetch = check_int(prefetch, "prefetch", minimum=0, what="batches produced ahead")
            io = check_int(io_requests or MAX_REQUESTS, "io_requests", what="requests")
            return cls(pool.num_workers, False, threads, prefetch, io, pool)
        workers = check_int(workers, "workers")
        if threads_per_worker is None:
            cores = os.cpu_count() or 1
            share = cores // workers if use_processes else cores
            threads_per_worker = max(1, min(MAX_DEFAULT_THREADS, share))
        threads = check_int(threads_per_worker, "threads_per_worker", what="decoding threads")
        prefetch = check_int(prefetch, "prefetch", minimum=0, what="batches produced ahead")
        io = MAX_REQUESTS if io_requests is None else io_requests
        io = check_int(io, "io_requests", what="storage requests in flight")
        return cls(workers, bool(use_processes), threads, prefetch, io)

    @property
    def parallel(self) -> bool:
        """Whether batches are gathered in a pool of threads or processes that share each
        batch (a `WorkerPool` produces whole batches instead)."""
        return self.pool is None and (self.workers > 1 or self.use_processes)

    def describe(self, fields: Sequence[Field]) -> ParallelismReport:
        """The threads and processes a dataset of ``fields`` starts at most, by purpose."""
        decodes = any(f.array.decodes_in_threads for f in fields)
        remote = any(f.array.reads_remotely() for f in fields)
        processes = self.workers if self.use_processes else 0
        lines = []
        threads = 0
        if self.pool is not None:
            lines.append(self.pool.describe())
            lines.append(
                f"{self.threads_per_worker} decoding threads in each of them (threads_per_worker)"
            )
            if self.prefetch:
                lines.append(f"{self.prefetch} prefetch threads, one per batch in flight")
            else:
                lines.append("one batch in flight at a time (prefetch=0)")
            return ParallelismReport(0, self.prefetch, tuple(lines))
        if processes:
            lines.append(f"{processes} worker processes, each gathering a share of a batch")
        elif self.workers > 1:
            threads += self.workers
            lines.append(f"{self.workers} worker threads, each gathering a share of a batch")
        else:
            lines.append("batches gathered inline, in the thread Keras reads them from")
        # The main process gathers too (inline batches, show_batch); each worker process
        # has its own decoding pool and its sources' request threads.
        gathering = 1 + processes
        if decodes:
            threads += self.threads_per_worker * gathering
            where = f"in each of {gathering} processes" if processes else "shared"
            lines.append(f"{self.threads_per_worker} decoding threads {where} (threads_per_worker)")
        if remote:
            io_threads = min(self.io_requests, MAX_IO_THREADS)
            threads += io_threads * gathering
            lines.append(
                f"{self.io_requests} storage requests in flight per gathering process "
                f"(io_requests), carried by up to {io_threads} threads on a file system "
                "without its own event loop"
            )
        if self.prefetch:
            threads += self.prefetch
            lines.append(f"{self.prefetch} prefetch threads (prefetch)")
        return ParallelismReport(processes, threads, tuple(lines))


@dataclasses.dataclass(frozen=True)
class ParallelismReport:
    """What `MultimodalDataset.describe_parallelism` returns (printable).

    Attributes:
        processes: The worker processes a dataset starts.
        threads: The threads it starts at most, in every process together (the release
            timer's, which comes and goes, aside).
        lines: What each of them is for.
    """

    processes: int
    threads: int
    lines: tuple[str, ...]

    def __str__(self) -> str:
        total = f"in all: {self.processes} processes and up to {self.threads} threads"
        return "\n".join([*self.lines, total])
