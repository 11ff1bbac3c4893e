"""`ReplacementLog`: the samples that sources replaced (``on_error="replace"``), reported
once per epoch with a `ReplacedSamplesWarning`, nothing dropped silently.

The batches Keras reads of epoch 0 before training starts (to build the model, and on
TensorFlow to infer the output signature) are not an epoch of their own: what they replaced
is carried into the first training epoch's report, each sample once.

Bounded whatever the number of samples: each epoch's report counts every replacement,
and `ReplacementLog.all` keeps the first `KEPT_PER_EPOCH` of each epoch, `KEPT` in all
(the oldest epochs' go first).
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Iterable

import numpy as np

from multimodal_dataset.batching.sampler import BatchPlan
from multimodal_dataset.diagnostics.served import ServedOnce, real_samples
from multimodal_dataset.sources.protocol import ReplacedSamplesWarning, Replacement

#: How many of an epoch's replacements `ReplacementLog.all` keeps (the first served).
KEPT_PER_EPOCH = 1000
#: How many it keeps in all, over the epochs (the most recent).
KEPT = 10_000


class ReplacementLog:
    """Counts replacements and reports them at the end of each epoch."""

    def __init__(self) -> None:
        self._reported: collections.deque[Replacement] = collections.deque(maxlen=KEPT)
        self._pending: list[Replacement] = []  # the first of the epoch, not reported yet
        self._count = 0  # replacements since the last report
        self._served = ServedOnce()

    def record(self, plan: BatchPlan, replaced: Iterable[Replacement]) -> None:
        """Adds the replacements of the batch ``plan`` describes; the same batch read
        again before the report counts once, and so does a sample that pads a last batch
        (``pad_remainder``: it is counted where it is real)."""
        if not self._served.first(plan):
            return
        replaced = list(replaced)
        if plan.real_count is not None:  # a padded batch: count its samples where real
            samples = np.array([r.sample for r in replaced], np.int64)
            real = set(real_samples(plan, samples).tolist())
            replaced = [r for r in replaced if r.sample in real]
        self._count += len(replaced)
        room = KEPT_PER_EPOCH - len(self._pending)
        if room > 0:
            self._pending += replaced[:room]

    def report(self, epoch: int) -> None:
        """Warns once for everything recorded since the last report."""
        count, new = self._count, self._pending
        self._count, self._pending = 0, []
        self._served.next_generation()
        self._reported.extend(new)
        if not count:
            return
        shown = "; ".join(f"{r.field} {r.reason}" for r in new[:5])
        more = f"; and {count - 5} more" if count > 5 else ""
        kept = "" if count <= KEPT_PER_EPOCH else f" (the first {KEPT_PER_EPOCH} of each epoch)"
        warnings.warn(
            f"MultimodalDataset epoch {epoch}: {count} sample"
            f"{'s were' if count > 1 else ' was'} replaced because "
            f"{'they' if count > 1 else 'it'} could not be read (on_error='replace'): "
            f"{shown}{more}. ds.replacements lists them{kept}.",
            ReplacedSamplesWarning,
            stacklevel=3,
        )

    @property
    def all(self) -> list[Replacement]:
        """The replacements kept so far, reported or not, once per epoch: the first
        `KEPT_PER_EPOCH` of each epoch, the most recent `KEPT` in all."""
        return list(self._reported) + self._pending
