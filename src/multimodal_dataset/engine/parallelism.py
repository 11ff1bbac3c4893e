"""`Parallelism`: every thread and process a dataset starts, decided in one place.

A dataset gathers each batch inline, or split over ``workers`` threads or processes. Every
process that gathers has one pool of decoding threads that all its image sources share
(they receive it in the gather context); a source reading a remote store keeps its
requests in flight in threads of its own; each prefetched batch is produced in a thread.
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
        prefetch: Batches produced ahead, each in its own thread.
    """

    workers: int = 1
    use_processes: bool = False
    threads_per_worker: int = 1
    prefetch: int = 0

    @classmethod
    def make(
        cls,
        workers: int,
        use_processes: bool,
        threads_per_worker: int | None,
        prefetch: int,
    ) -> Parallelism:
        """Checks the arguments; ``threads_per_worker=None`` takes the machine's cores
        (at most `MAX_DEFAULT_THREADS`), divided among worker processes.

        Raises:
            TypeError, ValueError: For a count that is not a positive integer (``prefetch``
                may be 0).
        """
        workers = check_int(workers, "workers")
        if threads_per_worker is None:
            cores = os.cpu_count() or 1
            share = cores // workers if use_processes else cores
            threads_per_worker = max(1, min(MAX_DEFAULT_THREADS, share))
        threads = check_int(threads_per_worker, "threads_per_worker", what="decoding threads")
        prefetch = check_int(prefetch, "prefetch", minimum=0, what="batches produced ahead")
        return cls(workers, bool(use_processes), threads, prefetch)

    @property
    def parallel(self) -> bool:
        """Whether batches are gathered in a pool (threads or processes)."""
        return self.workers > 1 or self.use_processes

    def describe(self, fields: Sequence[Field]) -> ParallelismReport:
        """The threads and processes a dataset of ``fields`` starts at most, by purpose."""
        decodes = any(f.array.decodes_in_threads for f in fields)
        io = sum(f.array.io_threads() for f in fields)
        processes = self.workers if self.use_processes else 0
        lines = []
        threads = 0
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
        if io:
            threads += io * gathering
            lines.append(f"{io} storage request threads per gathering process")
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
