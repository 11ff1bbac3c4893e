"""`ServedOnce`: whether a batch is counted for the first time since the last report.

Keras reads some batches twice (to build the model, and on TensorFlow to infer the
signature, before the epoch that counts), and a padded last batch repeats samples of
the first: the per-epoch reports of replaced and truncated samples count each batch
position once per report, and a padding sample where it is real.
"""

from __future__ import annotations

import numpy as np

from multimodal_dataset.batching.sampler import BatchPlan

#: A generation per batch position: 2 bytes per batch (16 MiB for 8 million batches).
_GENERATIONS = np.iinfo(np.uint16).max


class ServedOnce:
    """Marks batch positions as counted for the current report (and epoch).

    One ``uint16`` per batch position, grown as positions are seen: the generation the
    position was last counted in. A report, or a plan of another epoch, starts a new
    generation, so nothing is cleared per epoch (only every 65,535 generations, once).
    """

    def __init__(self) -> None:
        self._marks = np.zeros(0, np.uint16)
        self._generation = 1
        self._epoch: int | None = None

    def first(self, plan: BatchPlan) -> bool:
        """Whether ``plan``'s batch position is not counted yet in this generation (and
        marks it counted)."""
        if plan.epoch != self._epoch:
            if self._epoch is not None:
                self.next_generation()
            self._epoch = plan.epoch
        position = plan.position
        if position >= self._marks.size:
            grown = np.zeros(max(position + 1, 2 * self._marks.size), np.uint16)
            grown[: self._marks.size] = self._marks
            self._marks = grown
        if self._marks[position] == self._generation:
            return False
        self._marks[position] = self._generation
        return True

    def next_generation(self) -> None:
        """Starts a new generation: every position counts again."""
        self._generation += 1
        if self._generation > _GENERATIONS:
            self._marks[:] = 0
            self._generation = 1


def real_samples(plan: BatchPlan, samples: np.ndarray) -> np.ndarray:
    """``samples`` of ``plan``'s batch without those that only pad it (``pad_remainder``:
    counted where they are real); O(batch)."""
    if plan.real_count is None:
        return samples
    real = plan.indices[: plan.real_count]
    padding = np.setdiff1d(plan.indices[plan.real_count :], real)
    return samples[~np.isin(samples, padding)] if padding.size else samples
