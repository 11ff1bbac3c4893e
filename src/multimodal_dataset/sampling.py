"""Which samples make up batch ``i`` of epoch ``e``: a pure function of ``(seed, epoch)``.

The order of an epoch is computed from nothing but the seed, the epoch number and the
sample count, so every worker thread or process, every backend and every restarted run
computes the same batches without sharing any state. Shuffling is per sample (Keras's own
``fit(shuffle=True)`` only reorders whole batches).
"""

from __future__ import annotations

import math
import operator
import secrets
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset.padding import Padding
from multimodal_dataset.picklable import Picklable

MAX_SEED = 2**63 - 1


def draw_seed() -> int:
    """Draws a fresh 32-bit seed from the operating system's entropy."""
    return secrets.randbits(32)


def check_seed(seed: Any) -> int:
    """Returns ``seed`` as an int, or raises if it is not a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            f"seed must be a non-negative integer or None (to draw one); got {seed!r} of "
            f"type {type(seed).__name__}."
        )
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be an integer between 0 and 2**63-1; got seed={seed}.")
    return int(seed)


def epoch_order(num_samples: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The order in which an epoch visits the samples.

    Args:
        num_samples: How many samples the dataset has.
        seed: The dataset's seed.
        epoch: The epoch number (0 for the first).
        shuffle: Whether to shuffle; if False the order is ``0, 1, ..., n-1`` every epoch.

    Returns:
        A permutation of ``range(num_samples)`` as an ``int64`` array.
    """
    if not shuffle:
        return np.arange(num_samples, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch])))
    return rng.permutation(num_samples).astype(np.int64, copy=False)


#: ``group_by_length`` groups the samples by padded length within windows of this many steps.
GROUP_WINDOW_STEPS = 32


def group_by_length(
    order: np.ndarray, widths: np.ndarray, step: int, seed: int, epoch: int
) -> np.ndarray:
    """``order`` regrouped so that each step holds samples of the same padded length.

    ``widths`` is each sample's padded length (the smallest bucket boundary that holds
    it). The samples of the last partial step (``len(order) % step`` of them) are the last
    ones of ``order``, kept as they are (so which samples a ``drop_remainder`` drops is
    as random as without grouping). The rest is taken in windows of `GROUP_WINDOW_STEPS`
    steps: each window, with the samples carried over from the one before, is sorted by
    width (stably, so samples of one width stay in shuffled order), each width's samples
    are cut into full steps, and the few left over (fewer than a step per width) are
    carried into the next window; after the last window they fill the last steps, in
    width order. So nearly every step is padded only to its samples' own boundary.
    Finally the steps are shuffled. Every sample stays exactly once; the result is a pure
    function of its arguments.
    """
    full = len(order) // step * step
    window = step * GROUP_WINDOW_STEPS
    steps: list[np.ndarray] = []
    carried = order[:0]
    for start in range(0, full, window):
        part = np.concatenate([carried, order[start : min(start + window, full)]])
        part = part[np.argsort(widths[part], kind="stable")]
        runs = np.split(part, np.flatnonzero(np.diff(widths[part])) + 1)
        cuts = [len(run) // step * step for run in runs]
        steps += [run[:cut].reshape(-1, step) for run, cut in zip(runs, cuts, strict=True)]
        carried = np.concatenate([run[cut:] for run, cut in zip(runs, cuts, strict=True)])
    steps.append(carried.reshape(-1, step))  # whole steps: every cut is, and so is full
    grid = np.concatenate(steps)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, 1])))
    return np.concatenate([grid[rng.permutation(len(grid))].ravel(), order[full:]])


def count_batches(num_samples: int, batch_size: int, drop_remainder: bool) -> int:
    """The number of batches per epoch."""
    if drop_remainder:
        return num_samples // batch_size
    return math.ceil(num_samples / batch_size)


class Sampler(Picklable):
    """Maps ``(epoch, batch index)`` to the sample indices of that batch, for one shard.

    Every shard reads the same global order, a pure function of ``(seed, epoch)``: global
    step ``s`` covers positions ``[s * G, (s + 1) * G)`` of that order, where ``G`` is
    ``batch_size * shard_count``, and shard ``i`` takes the ``i``-th ``batch_size`` of them.
    So one process (shard ``(0, 1)``, batch ``G``) and ``count`` processes (batch ``G /
    count`` each) see the same samples in each step, and every shard takes the same number
    of steps:

    - ``drop_remainder``: only full global steps (the same tail of the order is dropped
      everywhere);
    - ``pad``: the last global step is filled up with samples from the start of the order,
      which the dataset gives weight 0 (``real_count`` says how many are real);
    - neither: the last batch may be partial, which several shards only allow when the
      samples fill whole global steps.

    Holds only plain numbers, so it pickles small; the order of the current epoch is
    cached and recomputed on demand in any process.

    Args:
        num_samples: How many samples the dataset has.
        batch_size: Samples per batch of this shard.
        shuffle: Whether each epoch visits the samples in a new random order.
        seed: The seed the order is derived from.
        drop_remainder: Whether a last, partial global step is dropped.
        shard_index: This shard, in ``[0, shard_count)``.
        shard_count: How many shards split each global step.
        pad: Whether the last global step is padded to full size.
        serve_all_shards: Serve every shard's batches, interleaved: batch ``j`` is batch
            ``j // shard_count`` of shard ``j % shard_count``. For Keras's own sharding
            (Keras 3.16+), which gives process ``i`` the batches ``i, i + count, ...``:
            each process then reads exactly its shard.
        padding: The variable-length fields, whose padded length each step gets from
            `widths` (see ``padding``).
        group_lengths: Per sample, the padded length to group by (`group_by_length`), or
            None.

    Raises:
        ValueError: For a shard outside ``[0, count)``, more shards than batches, or
            shards that would take different numbers of steps.
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_cache": lambda: None,
        "_lock": threading.Lock,
    }

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        drop_remainder: bool,
        shard_index: int = 0,
        shard_count: int = 1,
        pad: bool = False,
        serve_all_shards: bool = False,
        padding: Padding | None = None,
        group_lengths: np.ndarray | None = None,
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.shard_index, self.shard_count = check_shard((shard_index, shard_count))
        self.pad = pad and not drop_remainder
        global_batch = batch_size * self.shard_count
        self.num_batches = count_batches(num_samples, global_batch, drop_remainder)
        if self.shard_count > 1:
            batches = count_batches(num_samples, batch_size, drop_remainder)
            if self.shard_count > batches:
                raise ValueError(
                    f"shard=({shard_index}, {shard_count}) splits each step into "
                    f"{shard_count} shards, but the {num_samples} samples make only "
                    f"{batches} batch{'es' if batches != 1 else ''} of {batch_size}: some "
                    "shards would have no data. Use fewer processes or a smaller batch_size."
                )
            if not (drop_remainder or self.pad) and num_samples % global_batch:
                raise ValueError(
                    f"{num_samples} samples do not fill whole steps of {shard_count} shards x "
                    f"batch_size {batch_size} = {global_batch}: the last step would give the "
                    "shards batches of different sizes, and SPMD training would wait forever. "
                    "Pass drop_remainder=True (drop the last "
                    f"{num_samples % global_batch} samples of each epoch, the same ones on "
                    "every shard) or pad_remainder=True (fill the last step with zero-weight "
                    "samples)."
                )
        if self.num_batches == 0:
            shards = f" x {shard_count} shards" if shard_count > 1 else ""
            raise ValueError(
                f"drop_remainder=True with {num_samples} samples and batch_size={batch_size}"
                f"{shards} leaves no full batch. Use a batch_size of at most "
                f"{num_samples // shard_count}, or drop_remainder=False"
                f"{' with pad_remainder=True' if shard_count > 1 else ''}."
            )
        self.serve_all_shards = serve_all_shards
        if serve_all_shards:
            self.num_batches *= self.shard_count
        self.padding = padding if padding else None
        self.group_lengths = group_lengths
        self._cache: tuple[int, np.ndarray, _Plan] | None = None
        self._lock = threading.Lock()

    def order(self, epoch: int) -> np.ndarray:
        """The (cached) global sample order of ``epoch``."""
        return self._epoch_plan(epoch)[1]

    def _epoch_plan(self, epoch: int) -> tuple[int, np.ndarray, _Plan]:
        cache = self._cache
        if cache is not None and cache[0] == epoch:
            return cache
        with self._lock:
            cache = self._cache
            if cache is None or cache[0] != epoch:
                order = epoch_order(self.num_samples, self.seed, epoch, self.shuffle)
                step = self.batch_size * self.shard_count
                if self.group_lengths is not None and self.shuffle:
                    order = group_by_length(order, self.group_lengths, step, self.seed, epoch)
                plan = _Plan()
                if self.padding is not None:
                    order, plan = _vary_first_steps(order, step, self.padding, self.shuffle)
                cache = self._cache = (epoch, order, plan)
        return cache

    def widths(self, epoch: int, index: int) -> tuple[int | None, ...] | None:
        """Per field, the length batch ``index`` of ``epoch`` is padded to (None for a
        fixed-shape field), decided from every sample of its global step; None when no
        field is variable."""
        if self.padding is None:
            return None
        _, order, plan = self._epoch_plan(epoch)
        step = index // self.shard_count if self.serve_all_shards else index
        size = self.batch_size * self.shard_count
        start = step * size
        full = start + size <= self.num_samples
        samples = order[start : start + size]
        widths = list(self.padding.widths(samples, full))
        for k in plan.largest:
            widths[k] = self.padding.largest(k)
        if step == 1:
            for k, width in plan.second.items():
                widths[k] = width
        return tuple(widths)

    def check_index(self, index: Any) -> int:
        """``index`` as a batch index in ``[0, num_batches)`` (negative ones count back).

        Raises:
            TypeError: For a non-integer.
            IndexError: Outside ``[-num_batches, num_batches)``, so iteration stops.
        """
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(
                f"Batch indices must be integers; got {index!r} of type {type(index).__name__}."
            ) from None
        num_batches = self.num_batches
        if index < 0:
            index += num_batches
        if not 0 <= index < num_batches:
            raise IndexError(
                f"Batch index {index} is out of range: this dataset has {num_batches} batches "
                f"per epoch (valid indices are 0 to {num_batches - 1})."
            )
        return int(index)

    def start(self, index: int) -> int:
        """The position in the global order where this shard's batch ``index`` starts."""
        if self.serve_all_shards:
            return index * self.batch_size
        return (index * self.shard_count + self.shard_index) * self.batch_size

    def batch(self, epoch: int, index: int) -> np.ndarray:
        """The sample indices of batch ``index`` of ``epoch`` (``0 <= index < num_batches``)."""
        start = self.start(index)
        order = self.order(epoch)
        if self.pad and start + self.batch_size > self.num_samples:
            # Positions past the end wrap around to the start of the order.
            positions = np.arange(start, start + self.batch_size) % self.num_samples
            return order[positions]
        return order[start : start + self.batch_size]

    def real_count(self, index: int) -> int:
        """How many samples of batch ``index`` are real (the rest is padding)."""
        return max(0, min(self.batch_size, self.num_samples - self.start(index)))


class _Plan:
    """How an epoch keeps its first two steps' padded lengths apart (see
    `_vary_first_steps`): fields padded to their largest boundary in every step, and
    the lengths step 1 is padded to instead of its own."""

    def __init__(self) -> None:
        self.largest: set[int] = set()
        self.second: dict[int, int] = {}


def _vary_first_steps(
    order: np.ndarray, step: int, padding: Padding, shuffled: bool
) -> tuple[np.ndarray, _Plan]:
    """Makes steps 0 and 1 differ in the padded length of every variable field that
    varies at all in the epoch.

    Keras on TensorFlow infers a dataset's signature from its first two batches: a
    length equal in both would be frozen, and the first later batch of another length
    would fail. A shuffled order swaps a later step into second place; an unshuffled
    one (kept in row order for ``predict``) pads step 1 to the next larger boundary, or,
    when both steps already need the largest, pads that field to it in every step.
    """
    plan = _Plan()
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


def check_shard(shard: Any) -> tuple[int, int]:
    """Returns ``(index, count)``, or raises if it is not a valid shard."""
    try:
        if any(isinstance(v, (bool, np.bool_)) for v in shard):
            raise TypeError
        index, count = (operator.index(v) for v in shard)
    except (TypeError, ValueError):
        raise TypeError(
            f"shard must be a pair of integers (index, count), e.g. (0, 4) for the first of "
            f"four processes; got {shard!r}."
        ) from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            f"shard=({index}, {count}) is out of range: the index must be in [0, count) and "
            f"count at least 1. Process i of n reads shard=(i, n)."
        )
    return index, count
