"""`Sampler`: which samples make up batch ``i`` of epoch ``e`` for one shard, and how
each variable-length input is padded in it, answered as one `BatchPlan`."""

from __future__ import annotations

import dataclasses
import operator
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset._utils.picklable import Picklable
from multimodal_dataset.batching.order import IndexShuffle, count_batches
from multimodal_dataset.batching.padding import Padding
from multimodal_dataset.batching.steps import StepOrder

#: About how many positions of a shuffled order are computed at once (64 KiB of int64),
#: those of a shard's next whole batches: under a millisecond, whatever the number of
#: samples or of shards, then a slice per batch. The cost per position (about 75 ns) does
#: not depend on it; the first batch's wait and the memory do.
ORDER_CHUNK = 1 << 13


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """What batch ``position`` of ``epoch`` is, decided before any sample is read.

    Attributes:
        seed: The dataset's seed (random augmentations draw from it).
        epoch: The epoch the batch belongs to.
        position: The batch's index in the epoch.
        indices: The sample indices, in batch order.
        widths: Per field, the length a variable-length field is padded to in this batch
            (None for a fixed-shape field); None when no field varies.
        real_count: How many samples are real when the rest pads the batch (weight 0);
            None when every sample is real.
    """

    seed: int
    epoch: int
    position: int
    indices: np.ndarray
    widths: tuple[int | None, ...] | None = None
    real_count: int | None = None

    def width(self, field: int) -> int | None:
        """The padded length of field ``field`` in this batch (None: its own shape)."""
        return None if self.widths is None else self.widths[field]


class Sampler(Picklable):
    """Answers `plan`: which samples make up batch ``i`` of epoch ``e`` for one shard, and
    how each variable-length field is padded in it.

    Every shard reads the same global order, a pure function of ``(seed, epoch)``: global
    step ``s`` covers positions ``[s * G, (s + 1) * G)`` of that order, where ``G`` is
    ``batch_size * shard_count``, and shard ``i`` takes the ``i``-th ``batch_size`` of them.
    So one process (shard ``(0, 1)``, batch ``G``) and ``count`` processes (batch ``G /
    count`` each) see the same samples in each step, and every shard takes the same number
    of steps:

    - ``drop_remainder``: only full global steps (the same tail of the order is dropped
      everywhere);
    - ``pad``: the last global step is filled up with samples from the start of the order,
      which the dataset gives weight 0 (a plan's ``real_count`` says how many are real);
    - neither: the last batch may be partial, which several shards only allow when the
      samples fill whole global steps.

    Holds only plain numbers (and, for variable-length inputs, their lengths), so it
    pickles small. No epoch builds a permutation array, so the first batch costs the same
    at any sample count: a shuffled fixed-shape epoch is read `ORDER_CHUNK` positions at
    a time from `IndexShuffle`; variable-length inputs and grouping by length read the
    global step a batch belongs to from `StepOrder`. Either is recomputed on demand in
    any process.

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
        group_ranks: Per sample, the rank of the bucket to group by (``group_by_length``),
            or None.

    Raises:
        ValueError: For a shard outside ``[0, count)``, more shards than batches, or
            shards that would take different numbers of steps.
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_chunk": lambda: None,
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
        group_ranks: np.ndarray | None = None,
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
        self.steps = (
            None
            if self.padding is None
            else StepOrder(num_samples, global_batch, seed, shuffle, self.padding, group_ranks)
        )
        # A fixed-shape shuffled dataset reads its order a chunk of positions at a time.
        self._chunk: tuple[int, int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def plan(self, epoch: int, position: int) -> BatchPlan:
        """Batch ``position`` of ``epoch`` (``0 <= position < num_batches``): its samples,
        the padded length of each variable-length field, and how many samples are real."""
        # On the hot path: filled in directly (a frozen dataclass's __init__ sets each
        # field through object.__setattr__, a microsecond per batch); still immutable.
        plan = object.__new__(BatchPlan)
        plan.__dict__.update(
            seed=self.seed,
            epoch=epoch,
            position=position,
            indices=self._indices(epoch, position),
            widths=self._widths(epoch, position),
            real_count=self._real_count(position) if self.pad else None,
        )
        return plan

    def _widths(self, epoch: int, index: int) -> tuple[int | None, ...] | None:
        """Per field, the length batch ``index`` of ``epoch`` is padded to (None for a
        fixed-shape field), decided from every sample of its global step; None when no
        field is variable."""
        if self.steps is None:
            return None
        return self.steps.widths(epoch, self.start(index) // self.steps.step)

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

    def _indices(self, epoch: int, index: int) -> np.ndarray:
        """The sample indices of batch ``index`` of ``epoch`` (``0 <= index < num_batches``)."""
        if self.steps is not None:
            return self.steps.samples_at(epoch, self._positions(index, index + 1))
        if not self.shuffle:
            return self._positions(index, index + 1)
        chunk, first = divmod(index, self._chunk_batches)
        offset = first * self.batch_size
        return self._order_chunk(epoch, chunk)[offset : offset + self.batch_size]

    @property
    def _chunk_batches(self) -> int:
        """How many of this shard's batches one chunk of the order holds."""
        return max(1, ORDER_CHUNK // self.batch_size)

    def _positions(self, first: int, stop: int) -> np.ndarray:
        """The positions of the order that this shard's batches ``[first, stop)`` read, in
        batch order: past the end, a padded batch's wrap around to the start and a last
        partial batch's end."""
        batches = np.arange(first, stop, dtype=np.int64)
        starts = batches if self.serve_all_shards else batches * self.shard_count + self.shard_index
        positions = (starts[:, None] * self.batch_size + np.arange(self.batch_size)).ravel()
        if self.pad:
            return positions % self.num_samples
        return positions[positions < self.num_samples]

    def _order_chunk(self, epoch: int, chunk: int) -> np.ndarray:
        """The samples of this shard's batches ``[chunk * k, (chunk + 1) * k)`` of
        ``epoch`` (``k`` = `_chunk_batches`), one after the other: only the positions this
        shard reads, computed once and kept until the next chunk."""
        cached = self._chunk
        if cached is not None and cached[0] == epoch and cached[1] == chunk:
            return cached[2]
        with self._lock:
            cached = self._chunk
            if cached is None or cached[0] != epoch or cached[1] != chunk:
                first = chunk * self._chunk_batches
                positions = self._positions(
                    first, min(first + self._chunk_batches, self.num_batches)
                )
                order = IndexShuffle(self.num_samples, self.seed, epoch)(positions)
                cached = self._chunk = (epoch, chunk, order)
        return cached[2]

    def _real_count(self, index: int) -> int:
        """How many samples of batch ``index`` are real (the rest is padding)."""
        return max(0, min(self.batch_size, self.num_samples - self.start(index)))


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
