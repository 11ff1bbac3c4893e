"""`Padding`: the length each variable-length input is padded to in each step.

A variable-length source (``TextTokens(buckets=...)``) pads a batch to the smallest of its
bucket boundaries that holds the batch's longest sample. The length is decided per
*global step*, from every sample of the step, so the shards of one step (one per
process) get the same shape, or SPMD training would stall; and the workers that gather
parts of one batch pad them alike. A last step that is not full is padded to the largest
boundary, so it adds one compiled shape, not one per boundary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from multimodal_dataset._utils.picklable import Picklable


class Padding(Picklable):
    """The padded lengths of the variable-length fields of a dataset.

    Args:
        fields: Per field of the batch, its variable-length source's ``(buckets,
            lengths)``, or None for a fixed-shape field.
    """

    def __init__(self, fields: Sequence[tuple[tuple[int, ...], np.ndarray] | None]) -> None:
        self.fields = list(fields)
        self.variable = [k for k, f in enumerate(self.fields) if f is not None]

    def __bool__(self) -> bool:
        return bool(self.variable)

    def widths(self, samples: np.ndarray, full: bool = True) -> tuple[int | None, ...]:
        """Per field, the length a step of ``samples`` is padded to (None: fixed).

        Args:
            samples: Every sample of the step (all shards).
            full: False for a last, partial step: padded to the largest boundary.
        """
        out: list[int | None] = [None] * len(self.fields)
        if not full or not len(samples):
            for k in self.variable:
                out[k] = self.largest(k)
            return tuple(out)
        for k, per_step in self.step_widths(samples, len(samples)).items():
            out[k] = int(per_step[0])
        return tuple(out)

    def step_widths(self, order: np.ndarray, step: int) -> dict[int, np.ndarray]:
        """Per variable field, the padded length of every full step of ``order`` (steps
        of ``step`` samples), computed at once for a whole epoch."""
        full = len(order) // step
        out = {}
        for k in self.variable:
            buckets, lengths = self.fields[k]  # type: ignore[misc]
            longest = lengths[order[: full * step]].reshape(full, step).max(axis=1)
            out[k] = np.asarray(buckets)[np.searchsorted(buckets, longest)]
        return out

    def largest(self, k: int) -> int:
        """Field ``k``'s largest boundary."""
        return int(self.fields[k][0][-1])  # type: ignore[index]
