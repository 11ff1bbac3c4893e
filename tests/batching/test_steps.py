"""Steps decided together (variable-length inputs, grouping by length) are computed a
step or a window at a time: every sample once per epoch, the same batches whatever order
they are asked in, in any process, and a first batch whose cost does not grow with the
number of samples."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multimodal_dataset.batching import order as order_module
from multimodal_dataset.batching.first_steps import SEARCH_STEPS
from multimodal_dataset.batching.order import GROUP_WINDOW_STEPS
from multimodal_dataset.batching.padding import Padding
from multimodal_dataset.batching.sampler import Sampler

BUCKETS = (4, 8, 16, 32)


class HashedLengths:
    """Per-sample lengths of any count without an array, from a hash of the index: 3
    tokens, or 20 for one in 25 (so a batch of 32 may or may not need the largest
    bucket)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        mixed = (np.asarray(index, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(
            40
        )
        return np.where(mixed % np.uint64(25) == 0, 20, 3)

    def min(self) -> int:
        return 3

    def max(self) -> int:
        return 20


class HashedRanks(HashedLengths):
    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return np.searchsorted(BUCKETS, super().__getitem__(index)).astype(np.uint8)


def sampler(n, batch_size, shards=(0, 1), group=True, lengths=None, **kwargs):
    lengths = np.random.default_rng(n).integers(1, 31, n) if lengths is None else lengths
    ranks = np.searchsorted(BUCKETS, lengths).astype(np.uint8) if group else None
    return Sampler(
        n,
        batch_size,
        kwargs.pop("shuffle", True),
        kwargs.pop("seed", 7),
        kwargs.pop("drop_remainder", False),
        *shards,
        padding=Padding([(BUCKETS, lengths)]),
        group_ranks=ranks,
        **kwargs,
    )


def epoch(samplers, e):
    """Every shard's batches of epoch ``e``, step by step: (indices, widths) per step."""
    steps = []
    for batch in range(samplers[0].num_batches):
        plans = [s.plan(e, batch) for s in samplers]
        steps.append((np.concatenate([p.indices for p in plans]), {p.widths for p in plans}))
    return steps


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(20, 3000),
    batch_size=st.integers(1, 16),
    shard_count=st.integers(1, 3),
    group=st.booleans(),
    remainder=st.sampled_from(["pad", "drop", "none"]),
)
def test_every_sample_is_served_once_per_epoch_and_a_step_has_one_width_on_every_shard(
    n, batch_size, shard_count, group, remainder
):
    step = batch_size * shard_count
    if remainder == "none" and shard_count > 1:
        n = max(step, n // step * step)
    if -(-n // batch_size) < shard_count or (remainder == "drop" and n < step):
        return
    shards = [
        sampler(
            n,
            batch_size,
            (i, shard_count),
            group,
            drop_remainder=remainder == "drop",
            pad=remainder == "pad",
        )
        for i in range(shard_count)
    ]
    for e in range(2):
        steps = epoch(shards, e)
        assert all(len(widths) == 1 for _, widths in steps)
        served = np.concatenate([indices for indices, _ in steps])
        if remainder == "drop":
            assert len(served) == n // step * step and len(np.unique(served)) == len(served)
        else:
            np.testing.assert_array_equal(np.unique(served), np.arange(n))
            assert len(served) == (-(-n // step) * step if remainder == "pad" else n)


@pytest.mark.parametrize("group", [False, True])
def test_a_batch_is_the_same_whatever_was_asked_before_it_and_in_a_fresh_process(group):
    forward = sampler(2000, 8, group=group)
    plans = [forward.plan(1, i) for i in range(forward.num_batches)]
    backward = pickle.loads(pickle.dumps(sampler(2000, 8, group=group)))
    for i in reversed(range(backward.num_batches)):
        again = backward.plan(1, i)
        np.testing.assert_array_equal(again.indices, plans[i].indices)
        assert again.widths == plans[i].widths


def test_grouped_steps_mix_two_widths_only_where_a_window_changes_width():
    s = sampler(8 * GROUP_WINDOW_STEPS * 4, 8)
    mixed = 0
    own = np.asarray(BUCKETS)[np.searchsorted(BUCKETS, s.padding.fields[0][1])]
    for i in range(s.num_batches):
        plan = s.plan(0, i)
        mixed += int((own[plan.indices] < plan.width(0)).any())
    assert mixed <= (len(BUCKETS) - 1) * 4


@pytest.mark.parametrize("group", [False, True])
def test_the_first_batch_of_an_epoch_reads_as_many_positions_at_a_billion_samples(
    monkeypatch, group
):
    calls = []
    shuffle = order_module.IndexShuffle.__call__

    def counted(self, positions):
        calls.append(len(positions))
        return shuffle(self, positions)

    from multimodal_dataset.batching import steps

    monkeypatch.setattr(steps.IndexShuffle, "__call__", counted)
    read = {}
    for n in (10**4, 10**9):
        calls.clear()
        lengths = HashedLengths(n)
        s = Sampler(
            n,
            32,
            True,
            3,
            False,
            padding=Padding([(BUCKETS, lengths)]),
            group_ranks=HashedRanks(n) if group else None,
        )
        for e in range(2):
            plan = s.plan(e, 0)
            assert len(plan.indices) == 32 and plan.indices.max() < n
            second = s.plan(e, 1)
            assert plan.widths != second.widths
        read[n] = sum(calls)
    # At most the first-steps search (or three grouped windows) per epoch, at any N.
    bound = 2 * (SEARCH_STEPS + 2 + 3 * GROUP_WINDOW_STEPS) * 32
    assert read[10**4] <= bound and read[10**9] <= bound
