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

import itertools
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future
from typing import Any, ClassVar

from multimodal_dataset._utils.picklable import Picklable
from multimodal_dataset.batching.sampler import BatchPlan
from multimodal_dataset.engine.producer import ProducedBatch, Producer


class Prefetcher(Picklable):
    """Produces batches ahead in ``depth`` background threads: up to ``depth`` batches in
    flight at once, so a source that waits once per batch (a database or an API call)
    overlaps its waits instead of queueing them.

    It wraps the dataset's `Producer` (which holds the layout and the gatherer, not the
    dataset): a dataset nobody references is freed (and its pools released) at once. Its
    threads are the gatherer's (`Gatherer.prefetch_executor`), stopped with every other
    pool; a batch whose production was cancelled that way is produced when it is served.

    Args:
        producer: What turns a plan into a batch.
        depth: How many batches to produce ahead (memory: ``depth`` batches at most).
    """

    # Pickled with its dataset (worker processes): no batches in flight.
    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_pending": dict,
        "_lock": threading.Lock,
    }

    def __init__(self, producer: Producer, depth: int) -> None:
        self.producer = producer
        self.depth = depth
        self._pending: dict[tuple[int, int], Future[ProducedBatch]] = {}
        self._lock = threading.Lock()

    def get(self, plan: BatchPlan, upcoming: Iterable[BatchPlan]) -> ProducedBatch:
        """The batch of ``plan``: the prefetched one, or produced now; then starts
        producing the first ``depth`` of ``upcoming`` (the plans that follow it) in the
        background.

        Raises:
            Exception: Whatever producing the batch raised.
        """
        produce = self.producer.produce
        pool = self.producer.gatherer.prefetch_executor
        with self._lock:
            future = self._pending.pop((plan.epoch, plan.position), None)
            for later in itertools.islice(upcoming, self.depth):
                key = (later.epoch, later.position)
                if key not in self._pending:
                    self._pending[key] = pool().submit(produce, later)
        if future is not None:
            try:
                return future.result()
            except CancelledError:  # its pool was released meanwhile
                pass
        return produce(plan)

    def discard(self) -> None:
        """Drops every batch not served (the end of an epoch)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.cancel()

    @property
    def pending(self) -> int:
        """How many batches are being (or have been) produced and not served."""
        return len(self._pending)
