"""The epoch order: every sample exactly once, a new order each epoch, the same order for
the same seed everywhere."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multimodal_dataset import MultimodalDataset
from multimodal_dataset.batching.order import epoch_order

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
    np.testing.assert_array_equal(epoch_order(10, 0, 0, True), [4, 6, 2, 7, 3, 5, 9, 0, 8, 1])
    np.testing.assert_array_equal(epoch_order(10, 0, 1, True), [9, 1, 3, 8, 7, 6, 0, 4, 2, 5])


@pytest.mark.keras
def test_shuffle_defaults_to_on_for_training_and_off_for_inference():
    assert MultimodalDataset(np.arange(10), np.arange(10)).shuffle is True
    assert MultimodalDataset(np.arange(10)).shuffle is False
