"""`Prefetcher`: the next batches of an epoch produced in the background while the training
step runs, so that a step takes ``max(load, compute)`` instead of ``load + compute``.

While Keras runs an epoch, the dataset serves its ``k``-th request as batch ``k`` (see
`MultimodalDataset`), so the batches that come next are known whatever order Keras asks
in: after serving batch ``k`` the prefetcher starts ``k + 1 .. k + depth``, each in its own
thread (up to ``depth`` in flight). Each is keyed
by ``(epoch, batch)``: a batch computed for one epoch is never served in another, and each
is served at most once (taken out when served). At the end of an epoch whatever was not
served is dropped (its memory released) and its errors with it; an error of a batch that
is served is raised when it is served, where it belongs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Prefetcher:
    """Produces batches ahead in ``depth`` background threads: up to ``depth`` batches in
    flight at once, so a source that waits once per batch (a database or an API call)
    overlaps its waits instead of queueing them.

    The producing function is passed with each request, not kept, so the prefetcher holds
    no reference to its dataset: a dataset nobody references is freed (and its pools
    released) at once.

    Args:
        depth: How many batches to produce ahead (memory: ``depth`` batches at most).
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._pending: dict[tuple[int, int], Future[Any]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(
        self, produce: Callable[[int, int], Any], epoch: int, batch: int, upcoming: Iterable[int]
    ) -> Any:
        """Batch ``batch`` of ``epoch``: the prefetched one, or ``produce(epoch, batch)``
        now; then starts producing ``upcoming`` (at most ``depth`` of them) in the
        background.

        Raises:
            Exception: Whatever producing the batch raised.
        """
        with self._lock:
            future = self._pending.pop((epoch, batch), None)
            for later in list(upcoming)[: self.depth]:
                if (epoch, later) not in self._pending:
                    self._pending[(epoch, later)] = self._pool().submit(produce, epoch, later)
        if future is None:
            return produce(epoch, batch)
        return future.result()

    def discard(self) -> None:
        """Drops every batch not served (the end of an epoch)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.cancel()

    def close(self) -> None:
        """Drops the pending batches and stops the thread (it restarts when needed)."""
        self.discard()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __getstate__(self) -> dict[str, Any]:
        # Pickled with its dataset (worker processes): no thread, no batches in flight.
        return {"depth": self.depth}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["depth"])  # type: ignore[misc]

    @property
    def pending(self) -> int:
        """How many batches are being (or have been) produced and not served."""
        return len(self._pending)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.depth, "multimodal_dataset_prefetch")
        return self._executor
