"""The TensorFlow signature rule: the first two steps of an epoch differ in the padded
length of every variable-length input that varies at all.

Keras on TensorFlow infers a dataset's output signature from its first two batches: a
length equal in both would be frozen into the signature, and the first later batch of
another length would fail. `vary_first_steps` arranges the epoch's order (or the lengths
step 1 is padded to) so that never happens.
"""

from __future__ import annotations

import numpy as np

from multimodal_dataset.batching.padding import Padding


class FirstSteps:
    """How an epoch keeps its first two steps' padded lengths apart (see
    `vary_first_steps`): fields padded to their largest boundary in every step, and
    the lengths step 1 is padded to instead of its own."""

    def __init__(self) -> None:
        self.largest: set[int] = set()
        self.second: dict[int, int] = {}


def vary_first_steps(
    order: np.ndarray, step: int, padding: Padding, shuffled: bool
) -> tuple[np.ndarray, FirstSteps]:
    """Makes steps 0 and 1 differ in the padded length of every variable field that
    varies at all in the epoch.

    Keras on TensorFlow infers a dataset's signature from its first two batches: a
    length equal in both would be frozen, and the first later batch of another length
    would fail. A shuffled order swaps a later step into second place; an unshuffled
    one (kept in row order for ``predict``) pads step 1 to the next larger boundary, or,
    when both steps already need the largest, pads that field to it in every step.
    """
    plan = FirstSteps()
    full = len(order) // step
    if full < 2:
        return order, plan
    widths = padding.step_widths(order, step)
    partial = len(order) % step > 0  # a last partial step takes the largest boundary
    varies = [
        k
        for k, w in widths.items()
        if w[0] == w[1] and ((w != w[0]).any() or (partial and padding.largest(k) != w[0]))
    ]
    if not varies:
        return order, plan
    if shuffled:
        differs = np.all([widths[k][2:] != widths[k][0] for k in varies], axis=0)
        later = np.flatnonzero(differs)
        if len(later):
            swap = int(later[0]) + 2
            order = order.copy()
            second = order[step : 2 * step].copy()
            order[step : 2 * step] = order[swap * step : (swap + 1) * step]
            order[swap * step : (swap + 1) * step] = second
            return order, plan
    for k in varies:
        buckets = padding.fields[k][0]  # type: ignore[index]
        position = buckets.index(int(widths[k][1]))
        if position + 1 < len(buckets):
            plan.second[k] = buckets[position + 1]
        else:
            plan.largest.add(k)
    return order, plan
