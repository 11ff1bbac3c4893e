"""The epoch order: every sample exactly once, a new order each epoch, the same order for
the same seed everywhere."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multimodal_dataset import MultimodalDataset
from multimodal_dataset.batching.order import IndexShuffle, epoch_order

sizes = st.integers(min_value=1, max_value=300)
batch_sizes = st.integers(min_value=1, max_value=64)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def epoch_ids(ds: MultimodalDataset) -> np.ndarray:
    """The sample ids of one epoch, in the order the batches serve them."""
    return np.concatenate([ds[i][0] for i in range(len(ds))])


def stream(ds: MultimodalDataset, epochs: int) -> list[np.ndarray]:
    out = []
    for _ in range(epochs):
        out.append(epoch_ids(ds))
        ds.on_epoch_end()
    return out


@pytest.mark.keras
@settings(max_examples=60, deadline=None)
@given(n=sizes, batch_size=batch_sizes, seed=seeds)
def test_every_sample_appears_exactly_once_per_epoch(n: int, batch_size: int, seed: int) -> None:
    ds = MultimodalDataset(np.arange(n), batch_size=batch_size, seed=seed, shuffle=True)
    assert len(ds) == -(-n // batch_size)
    for ids in stream(ds, epochs=3):
        np.testing.assert_array_equal(np.sort(ids), np.arange(n))


@pytest.mark.keras
@settings(max_examples=60, deadline=None)
@given(n=sizes, batch_size=batch_sizes, seed=seeds)
def test_drop_remainder_serves_only_full_batches_and_no_sample_twice(
    n: int, batch_size: int, seed: int
) -> None:
    if n < batch_size:
        with pytest.raises(ValueError, match="leaves no full batch"):
            MultimodalDataset(np.arange(n), batch_size=batch_size, drop_remainder=True)
        return
    ds = MultimodalDataset(
        np.arange(n), batch_size=batch_size, seed=seed, drop_remainder=True, shuffle=True
    )
    assert len(ds) == n // batch_size
    for ids in stream(ds, epochs=3):
        assert all(len(ds[i][0]) == batch_size for i in range(len(ds)))
        assert len(ids) == len(ds) * batch_size
        assert len(np.unique(ids)) == len(ids)


@pytest.mark.keras
@settings(max_examples=40, deadline=None)
@given(n=st.integers(min_value=12, max_value=300), batch_size=batch_sizes, seed=seeds)
def test_each_epoch_has_a_new_order(n: int, batch_size: int, seed: int) -> None:
    ds = MultimodalDataset(np.arange(n), batch_size=batch_size, seed=seed, shuffle=True)
    first, second, third = stream(ds, epochs=3)
    assert not np.array_equal(first, second)
    assert not np.array_equal(second, third)


@pytest.mark.keras
@settings(max_examples=40, deadline=None)
@given(n=sizes, batch_size=batch_sizes, seed=seeds, drop=st.booleans())
def test_the_stream_is_a_pure_function_of_seed_and_epoch(
    n: int, batch_size: int, seed: int, drop: bool
) -> None:
    if drop and n < batch_size:
        return
    kwargs = dict(batch_size=batch_size, seed=seed, drop_remainder=drop, shuffle=True)
    ds = MultimodalDataset(np.arange(n), **kwargs)
    expected = stream(ds, epochs=3)
    again = stream(MultimodalDataset(np.arange(n), **kwargs), epochs=3)
    fresh = MultimodalDataset(np.arange(n), **kwargs)
    fresh.on_epoch_end()
    fresh.on_epoch_end()
    for a, b in zip(expected, again, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(epoch_ids(fresh), expected[2])


@pytest.mark.keras
def test_a_pickled_copy_in_another_process_serves_the_same_batches() -> None:
    ds = MultimodalDataset(np.arange(100), batch_size=7, seed=3, shuffle=True)
    ds.on_epoch_end()
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.epoch == 1
    np.testing.assert_array_equal(epoch_ids(copy), epoch_ids(ds))


@pytest.mark.keras
def test_different_seeds_give_different_orders() -> None:
    a = MultimodalDataset(np.arange(50), batch_size=8, seed=1, shuffle=True)
    b = MultimodalDataset(np.arange(50), batch_size=8, seed=2, shuffle=True)
    assert not np.array_equal(epoch_ids(a), epoch_ids(b))


@pytest.mark.keras
def test_without_shuffle_every_epoch_is_in_sample_order() -> None:
    ds = MultimodalDataset(np.arange(20), batch_size=6, shuffle=False)
    for ids in stream(ds, epochs=2):
        np.testing.assert_array_equal(ids, np.arange(20))


@pytest.mark.keras
def test_seed_none_draws_a_seed_and_exposes_it() -> None:
    ds = MultimodalDataset(np.arange(40), batch_size=8, shuffle=True)
    assert isinstance(ds.seed, int)
    replay = MultimodalDataset(np.arange(40), batch_size=8, seed=ds.seed, shuffle=True)
    np.testing.assert_array_equal(epoch_ids(ds), epoch_ids(replay))


def test_the_order_for_a_known_seed_never_changes() -> None:
    """Golden values: the same seed must give the same stream on every backend, machine
    and release, or resumed and distributed runs would silently diverge."""
    np.testing.assert_array_equal(epoch_order(10, 0, 0, True), [0, 5, 3, 7, 6, 1, 9, 8, 4, 2])
    np.testing.assert_array_equal(epoch_order(10, 0, 1, True), [6, 0, 7, 5, 3, 9, 1, 4, 2, 8])
    billion = IndexShuffle(10**9, 0, 0)(np.array([0, 1, 999_999_999]))
    np.testing.assert_array_equal(billion, [619742719, 114678397, 612414748])


# ------------------------------------------------------ the order without a permutation


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.integers(0, 2**63 - 1), st.integers(0, 1000))
def test_the_index_shuffle_visits_every_sample_exactly_once(num_samples, seed, epoch):
    order = IndexShuffle(num_samples, seed, epoch)(np.arange(num_samples))
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), np.arange(num_samples))


def test_any_positions_give_the_samples_of_the_whole_order_there():
    shuffle = IndexShuffle(1_000_003, 7, 2)
    whole = shuffle(np.arange(1_000_003))
    positions = np.array([5, 0, 1_000_002, 77, 77, 500_000])
    np.testing.assert_array_equal(shuffle(positions), whole[positions])


def test_the_shuffled_order_looks_random_first_places_uniform_and_no_drift():
    # Which sample comes first, over 4,000 epochs of 8 samples: each about 500 times.
    firsts = np.array([IndexShuffle(8, 0, e)(np.array([0]))[0] for e in range(4000)])
    counts = np.bincount(firsts, minlength=8)
    chi2 = ((counts - 500) ** 2 / 500).sum()
    assert chi2 < 30, counts  # 7 degrees of freedom: p < 1e-4 above 29
    # Position and sample are uncorrelated, and neighbours are far apart.
    order = IndexShuffle(100_000, 1, 0)(np.arange(100_000))
    assert abs(np.corrcoef(np.arange(100_000), order)[0, 1]) < 0.02
    assert np.median(np.abs(np.diff(order))) > 20_000  # a random order: about 29,000


@pytest.mark.keras
@pytest.mark.parametrize("pad", [False, True])
def test_batches_read_through_chunks_of_the_order_are_the_whole_orders(monkeypatch, pad):
    from multimodal_dataset.batching import sampler

    monkeypatch.setattr(sampler, "ORDER_CHUNK", 36)  # three batches of 12 per chunk
    ds = MultimodalDataset(np.arange(100), np.zeros(100), batch_size=12, seed=3, pad_remainder=pad)
    for epoch in range(2):
        whole = epoch_order(100, 3, epoch, True)
        served = np.concatenate([ds.batch_indices(i) for i in range(len(ds))])
        expected = np.resize(whole, len(served)) if pad else whole
        np.testing.assert_array_equal(served, expected)
        ds.on_epoch_end()


@pytest.mark.parametrize("serve_all_shards", [False, True])
@pytest.mark.parametrize("pad", [False, True])
def test_each_shard_reads_its_part_of_the_whole_order_through_its_own_chunks(
    monkeypatch, pad, serve_all_shards
):
    from multimodal_dataset.batching import sampler

    monkeypatch.setattr(sampler, "ORDER_CHUNK", 20)  # five batches of 4 per chunk
    samples = 90 if pad else 96  # a padded last global step of 3 x 4, or whole ones
    whole = epoch_order(samples, 5, 1, True)
    for index in range(3):
        shard = sampler.Sampler(
            samples, 4, True, 5, False, index, 3, pad=pad, serve_all_shards=serve_all_shards
        )
        for batch in range(shard.num_batches):
            start = shard.start(batch)
            expected = whole[np.arange(start, start + 4) % samples]
            np.testing.assert_array_equal(shard.plan(1, batch).indices, expected)


@pytest.mark.keras
def test_shuffle_defaults_to_on_for_training_and_off_for_inference():
    assert MultimodalDataset(np.arange(10), np.arange(10)).shuffle is True
    assert MultimodalDataset(np.arange(10)).shuffle is False
