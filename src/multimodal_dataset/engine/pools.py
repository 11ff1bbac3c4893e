"""`WorkerPool`: workers outside the dataset's process that produce whole batches.

``workers=`` takes a count of threads or processes (they share each batch's samples), or a
`WorkerPool` such as `multimodal_dataset.ray.RayWorkers`: workers that may run on other
machines, each producing whole batches. The dataset asks for each batch by its plan
(epoch, position, sample indices), never by a Keras index, so a batch is the same
wherever and however often it is produced: a task whose worker died is simply produced
again by another. The prefetch threads bound what is in flight (``prefetch`` batches)
and serve them in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from multimodal_dataset.batching.sampler import BatchPlan
from multimodal_dataset.batching.structure import Field
from multimodal_dataset.engine.gathering import Gathered


class RunningPool(Protocol):
    """The started workers of one dataset (or of one cache fill)."""

    def gather(self, plan: BatchPlan) -> Gathered:
        """The arrays of ``plan`` (blocking; called from several threads at once).

        Raises:
            Exception: What a source raised, with its message.
            WorkerError: When the batch could not be produced on any worker.
        """
        ...

    def fill(self, spans: Iterable[tuple[int, int]]) -> Iterator[tuple[int, list[tuple[int, str]]]]:
        """Fills the cache of the pool's image source over ``spans``, in order:
        ``(already cached, failed)`` per span (see `engine.filling.fill_span`)."""
        ...

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stops every worker (as ``Executor.shutdown`` does)."""
        ...


@runtime_checkable
class WorkerPool(Protocol):
    """What ``MultimodalDataset(workers=...)`` and ``fill_cache(workers=...)`` accept
    besides a count: a picklable description of workers, started per dataset."""

    @property
    def num_workers(self) -> int:
        """How many workers produce batches at once."""
        ...

    @property
    def threads_per_worker(self) -> int:
        """Decoding threads in each worker (its share of cores)."""
        ...

    def describe(self) -> str:
        """One line for `MultimodalDataset.describe_parallelism`."""
        ...

    def start(self, fields: Sequence[Field], threads: int, io_requests: int) -> RunningPool:
        """Workers that hold ``fields`` (sent once) and gather batches of them."""
        ...

    def start_filling(self, source: Any) -> RunningPool:
        """Workers that hold ``source`` and fill its cache (`RunningPool.fill`)."""
        ...
