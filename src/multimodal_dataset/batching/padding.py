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

    Attributes:
        variable: The positions of the variable-length fields.
        spans: Per field, whether its samples reach more than one boundary (so its
            padded length may vary from step to step); computed once.
    """

    def __init__(self, fields: Sequence[tuple[tuple[int, ...], np.ndarray] | None]) -> None:
        self.fields = list(fields)
        self.variable = [k for k, f in enumerate(self.fields) if f is not None]
        self.spans = [False] * len(self.fields)
        for k in self.variable:
            buckets, lengths = self.fields[k]  # type: ignore[misc]
            if len(lengths):
                ends = np.searchsorted(buckets, [lengths.min(), lengths.max()])
                self.spans[k] = bool(ends[0] != ends[1])

    def __bool__(self) -> bool:
        return bool(self.variable)

    def widths(self, samples: np.ndarray, full: bool = True) -> tuple[int | None, ...]:
        """Per field, the length a step of ``samples`` is padded to (None: fixed).

        Args:
            samples: Every sample of the step (all shards).
            full: False for a last, partial step: padded to the largest boundary.
        """
        out: list[int | None] = [None] * len(self.fields)
        for k in self.variable:
            buckets, lengths = self.fields[k]  # type: ignore[misc]
            if not full or not len(samples):
                out[k] = self.largest(k)
                continue
            longest = lengths[samples].max()
            out[k] = int(buckets[min(int(np.searchsorted(buckets, longest)), len(buckets) - 1)])
        return tuple(out)

    def largest(self, k: int) -> int:
        """Field ``k``'s largest boundary."""
        return int(self.fields[k][0][-1])  # type: ignore[index]
