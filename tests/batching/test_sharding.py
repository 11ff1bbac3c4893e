"""Sharding and padding: every shard reads a disjoint part of the same global order with
the same number of steps, and padding loses no sample and weighs nothing."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import N, real_ids, shards
from multimodal_dataset import MultimodalDataset

pytestmark = pytest.mark.keras


@pytest.mark.parametrize("mode", ["pad_remainder", "drop_remainder"])
@pytest.mark.parametrize("count", [1, 2, 4])
def test_shards_take_equal_steps_and_together_read_the_epoch_once(count, mode):
    datasets = shards(count, **{mode: True})
    assert len({len(ds) for ds in datasets}) == 1
    assert all(ds[i][0].shape[0] == 5 for ds in datasets for i in range(len(ds)))
    seen = np.concatenate([np.concatenate(real_ids(ds)) for ds in datasets])
    assert len(seen) == len(set(seen.tolist()))  # disjoint, nothing twice
    if mode == "pad_remainder":
        assert sorted(seen) == list(range(N))  # nothing lost
    else:
        assert len(seen) == N - N % (5 * count)  # only whole global steps


def test_four_shards_see_per_step_exactly_what_one_process_with_four_times_the_batch_sees():
    one = MultimodalDataset(
        np.arange(N)[:, None], np.arange(N), batch_size=20, seed=7, pad_remainder=True, shard=(0, 1)
    )
    four = shards(4, batch_size=5, pad_remainder=True)
    for _ in range(2):  # two epochs
        assert len(one) == len(four[0])
        for step in range(len(one)):
            joined = np.concatenate([ds.batch_indices(step) for ds in four])
            np.testing.assert_array_equal(joined, one.batch_indices(step))
        for ds in (one, *four):
            ds.on_epoch_end()


def test_padding_weighs_zero_keeps_user_weights_and_repeats_only_early_samples():
    ids = np.arange(13)
    weights = np.linspace(0.5, 2.0, 13)
    ds = MultimodalDataset(ids[:, None], ids, weights, batch_size=5, seed=1, pad_remainder=True)
    x, y, w = ds[2]
    assert x.shape[0] == 5 and w.dtype == keras.config.floatx()
    np.testing.assert_allclose(w[:3], weights[y[:3]], rtol=1e-6)
    np.testing.assert_array_equal(w[3:], 0)
    np.testing.assert_array_equal(y[3:], ds.batch_indices(0)[:2])  # wrapped from the start


def test_padding_without_user_weights_adds_weights_of_one():
    ds = MultimodalDataset(np.zeros((7, 2)), np.zeros(7), batch_size=4, pad_remainder=True)
    assert len(ds.element_spec) == 3
    np.testing.assert_array_equal(ds[0][2], 1)
    np.testing.assert_array_equal(ds[1][2], [1, 1, 1, 0])


@pytest.mark.backend
def test_padding_changes_no_metric_and_no_loss_with_mean_with_sample_weight():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(45, 3)).astype("float32"), rng.integers(0, 2, 45)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    loss = keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight")
    model.compile("sgd", loss, weighted_metrics=["accuracy"])
    plain = MultimodalDataset(x, y, batch_size=45, shuffle=False)
    padded = MultimodalDataset(x, y, batch_size=45 + 19, shuffle=False, pad_remainder=True)
    a = model.evaluate(plain, verbose=0, return_dict=True)
    b = model.evaluate(padded, verbose=0, return_dict=True)
    assert b["accuracy"] == pytest.approx(a["accuracy"])
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shard": (4, 4)}, ValueError, r"shard=\(4, 4\) is out of range"),
        ({"shard": (-1, 2)}, ValueError, "out of range"),
        ({"shard": (0, 0)}, ValueError, "out of range"),
        ({"shard": "0/4"}, TypeError, "pair of integers"),
        ({"shard": (True, 2)}, TypeError, "pair of integers"),
        ({"shard": (0, np.bool_(True))}, TypeError, "pair of integers"),
        ({"shard": (0, 30)}, ValueError, "some shards would have no data"),
        ({"shard": (0, 4)}, ValueError, "SPMD training would wait forever"),
        ({"pad_remainder": True, "drop_remainder": True}, ValueError, "contradict"),
    ],
)
def test_bad_shards_and_contradictory_options_say_what_is_wrong(kwargs, error, match):
    ids = np.arange(N)
    with pytest.raises(error, match=match):
        MultimodalDataset(ids, ids, batch_size=5, **kwargs)


def test_padding_needs_targets():
    with pytest.raises(ValueError, match="only training and evaluation"):
        MultimodalDataset(np.zeros((7, 2)), batch_size=4, pad_remainder=True)
