"""`Producer`: the one path from a `BatchPlan` to a packed batch.

``ds[i]``, the prefetcher's background threads and ``ds.show_batch`` all produce batches
here: the gatherer reads the plan's samples (inline, in threads or in processes), the
layout packs them into ``(x,)``, ``(x, y)`` or ``(x, y, w)``, and what the sources
reported on the way (replaced samples, truncated texts) travels with the batch as a
`ProducedBatch`. Nothing is recorded here: a batch may be produced ahead, in another
thread, and only the dataset knows when it is served.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from multimodal_dataset.batching.layout import BatchLayout
from multimodal_dataset.batching.sampler import BatchPlan
from multimodal_dataset.engine.gatherer import Gatherer
from multimodal_dataset.sources.protocol import Replacement


@dataclasses.dataclass(slots=True)
class ProducedBatch:
    """A batch as Keras receives it, with what producing it found and took.

    Attributes:
        plan: The plan it was produced from (samples, epoch, position).
        batch: ``(x,)``, ``(x, y)`` or ``(x, y, w)``.
        arrays: The gathered arrays, one per field (``batch`` holds the same arrays).
        replaced: The samples sources replaced (``on_error="replace"``).
        truncated: ``(field, samples)`` of the texts cut to their largest bucket.
        seconds: Per field, the seconds gathering took (summed over the workers).
        produce_s: The seconds producing the batch took.
    """

    plan: BatchPlan
    batch: tuple[Any, ...]
    arrays: list[np.ndarray]
    replaced: list[Replacement]
    truncated: list[tuple[str, list[int]]]
    seconds: list[float]
    produce_s: float


class Producer:
    """Turns plans into packed batches (see the module docstring).

    Holds the layout and the gatherer, never the dataset: a dataset nobody references is
    freed (and its pools released) at once, even with batches in flight.
    """

    def __init__(self, layout: BatchLayout, gatherer: Gatherer) -> None:
        self.layout = layout
        self.gatherer = gatherer

    def produce(self, plan: BatchPlan) -> ProducedBatch:
        """The batch of ``plan``.

        Raises:
            Exception: Whatever a source raised (a `SampleError` naming the sample), or
                a `WorkerError` for a worker process that died.
        """
        start = time.perf_counter()
        gathered = self.gatherer.gather(plan)
        batch = self.layout.pack(gathered.arrays, plan.real_count)
        return ProducedBatch(
            plan,
            batch,
            gathered.arrays,
            gathered.replaced,
            gathered.truncated,
            gathered.seconds,
            time.perf_counter() - start,
        )
