"""The TensorFlow signature rule: the first two steps of an epoch differ in the padded
length of every variable-length input that varies at all.

Keras on TensorFlow infers a dataset's output signature from its first two batches: a
length equal in both would be frozen into the signature, and the first later batch of
another length would fail. `plan_first_steps` decides, from the first steps alone, how
an epoch avoids that: by taking a later step second (a swap of two steps), or by padding
step 1 (or every step) to another boundary.
"""

from __future__ import annotations

from collections.abc import Callable

from multimodal_dataset.batching.padding import Padding

#: How many later steps a shuffled epoch looks through for one to take second.
SEARCH_STEPS = 64


class FirstSteps:
    """How an epoch keeps its first two steps' padded lengths apart: the step that is
    served second (and the second step served in its place), fields padded to their
    largest boundary in every step, and the lengths step 1 is padded to instead of its
    own."""

    def __init__(self, swap: int | None = None) -> None:
        self.swap = swap
        self.largest: set[int] = set()
        self.second: dict[int, int] = {}

    def source(self, step: int) -> int:
        """The step of the epoch's order that is served as ``step``."""
        if self.swap is None:
            return step
        if step == 1:
            return self.swap
        return 1 if step == self.swap else step


def plan_first_steps(
    widths_of: Callable[[int], tuple[int | None, ...]],
    full_steps: int,
    padding: Padding,
    shuffled: bool,
    partial: bool,
) -> FirstSteps:
    """Makes steps 0 and 1 differ in the padded length of every variable field that
    varies at all: one whose samples reach more than one boundary, or whose last,
    partial step (padded to the largest boundary) differs from the first.

    A shuffled epoch serves, second, the first of the next `SEARCH_STEPS` steps that
    differs from step 0 in every such field; an unshuffled one (kept in row order for
    ``predict``), or one where no such step is found, pads step 1 to the next larger
    boundary, or, when step 1 already needs the largest, pads that field to it in every
    step. Reads at most ``SEARCH_STEPS + 2`` steps, whatever the epoch's length.

    Args:
        widths_of: The padded lengths of a full step of the epoch's order, per field.
        full_steps: How many full steps the epoch has.
        padding: The dataset's variable-length fields.
        shuffled: Whether the epoch is shuffled (steps may be swapped).
        partial: Whether a last, partial step follows the full ones.
    """
    plan = FirstSteps()
    if full_steps < 2:
        return plan
    first, second = widths_of(0), widths_of(1)
    varies = [
        k
        for k in padding.variable
        if first[k] == second[k]
        and (padding.spans[k] or (partial and padding.largest(k) != first[k]))
    ]
    if not varies:
        return plan
    if shuffled:
        for step in range(2, min(full_steps, SEARCH_STEPS + 2)):
            widths = widths_of(step)
            if all(widths[k] != first[k] for k in varies):
                return FirstSteps(swap=step)
    for k in varies:
        buckets = padding.fields[k][0]  # type: ignore[index]
        position = buckets.index(int(second[k]))  # type: ignore[arg-type]
        if position + 1 < len(buckets):
            plan.second[k] = buckets[position + 1]
        else:
            plan.largest.add(k)
    return plan
