"""Sharding, padding and resumable state: every shard reads a disjoint part of the same
global order with the same number of steps, padding loses no sample and weighs nothing, and
a resumed fit sees exactly the batches of an uninterrupted one."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from multimodal_dataset import MultimodalDataset

N = 103


def shards(count, batch_size=5, n=N, **kwargs):
    ids = np.arange(n)
    return [
        MultimodalDataset(
            ids[:, None], ids, batch_size=batch_size, seed=7, shard=(i, count), **kwargs
        )
        for i in range(count)
    ]


def real_ids(ds):
    """The sample ids of every batch of the current epoch, without the zero-weight padding."""
    out = []
    for i in range(len(ds)):
        batch = ds[i]
        ids = batch[1]
        if ds.pad_remainder:
            ids = ids[batch[2] > 0]
        out.append(ids)
    return out


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


def test_state_round_trips_and_continues_the_stream():
    ids = np.arange(50)
    ds = MultimodalDataset(ids, ids, batch_size=8, seed=3)
    for _ in range(2):
        ds.on_epoch_end()
    for i in range(3):
        ds[i]
    state = ds.get_state()
    assert state["epoch"] == 2 and state["position"] == 3
    rest = [ds[i][1] for i in range(state["position"], len(ds))]
    fresh = MultimodalDataset(ids, ids, batch_size=8, seed=3)
    fresh.set_state(state)
    again = [fresh[i][1] for i in range(fresh.get_state()["position"], len(fresh))]
    for a, b in zip(rest, again, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("other", "match"),
    [
        ({"n": 51}, "num_samples=50"),
        ({"seed": 4}, "seed=3"),
        ({"batch_size": 9}, "batch_size=8"),
    ],
)
def test_a_state_from_another_dataset_is_refused(other, match):
    settings = {"n": 50, "seed": 3, "batch_size": 8} | other
    state = MultimodalDataset(np.arange(50), np.arange(50), batch_size=8, seed=3).get_state()
    ids = np.arange(settings["n"])
    ds = MultimodalDataset(ids, ids, batch_size=settings["batch_size"], seed=settings["seed"])
    with pytest.raises(ValueError, match=f"different dataset: .*{match}"):
        ds.set_state(state)


def test_a_state_past_the_end_of_an_epoch_is_refused():
    ds = MultimodalDataset(np.arange(50), np.arange(50), batch_size=8, seed=3)
    with pytest.raises(ValueError, match="out of range"):
        ds.set_state(dict(ds.get_state(), position=99))


class Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted")


def run_fit(ds, backup_dir, epochs, extra=()):
    """Fits with BackupAndRestore; returns the sample ids trained on, per epoch run."""
    from test_training import Recorder, RecordIds

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    recorder = Recorder()
    model.compile("sgd", "mse", metrics=[RecordIds(recorder)], run_eagerly=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        ds.epoch_callback(),
        recorder,
        *extra,
    ]
    try:
        model.fit(ds, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    except RuntimeError as error:
        assert "interrupted" in str(error)
    return [np.concatenate(batches) for batches in recorder.epochs]


def test_a_fit_interrupted_and_resumed_with_backup_and_restore_sees_the_same_stream(tmp_path):
    ids = np.arange(37, dtype="float32")

    def dataset():
        return MultimodalDataset(ids[:, None], ids, batch_size=5, seed=11)

    clean = run_fit(dataset(), tmp_path / "clean", epochs=4)
    crashed = run_fit(dataset(), tmp_path / "crash", epochs=4, extra=[Interrupt(epoch=2, batch=3)])
    resumed = run_fit(dataset(), tmp_path / "crash", epochs=4)
    assert len(clean) == 4 and all(sorted(e.tolist()) == list(range(37)) for e in clean)
    assert len(crashed) == 3 and len(crashed[2]) == 4 * 5  # stopped inside epoch 2
    # The resumed run restarts at epoch 2 (BackupAndRestore restores whole epochs) and
    # sees exactly the batches, in order, that the uninterrupted run saw from epoch 2 on.
    assert len(resumed) == 2
    for got, expected in itertools.zip_longest(resumed, clean[2:]):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(crashed, clean, strict=False):
        np.testing.assert_array_equal(got, expected[: len(got)])


class KerasShardingDistribution:
    """What Keras 3.16's PyDatasetAdapter reads of a DataParallel over two processes with
    auto_shard_dataset=True (the default): it then takes batches shard_id, shard_id + 2, ..."""

    def __init__(self, data_shard_id, auto_shard_dataset=True):
        self.data_shard_id = data_shard_id
        self.auto_shard_dataset = auto_shard_dataset
        self.num_data_shards = 2
        self.num_processes = 2
        self.num_model_replicas = 2


@pytest.fixture
def keras_shards(monkeypatch):
    """Pretends to run under a two-process distribution on a Keras that shards PyDatasets."""
    from multimodal_dataset import distribution as distribution_module

    monkeypatch.setattr(distribution_module, "_keras_shards_py_datasets", lambda: True)

    def use(distribution):
        monkeypatch.setattr(keras.distribution, "distribution", lambda: distribution)

    return use


@pytest.mark.parametrize("mode", ["pad_remainder", "drop_remainder"])
def test_under_keras_own_sharding_each_process_reads_exactly_its_shard(keras_shards, mode):
    ids = np.arange(N)
    expected = [real_ids(ds) for ds in shards(2, **{mode: True})]
    for process in (0, 1):
        keras_shards(KerasShardingDistribution(process))
        ds = MultimodalDataset(ids[:, None], ids, batch_size=5, seed=7, **{mode: True})
        assert ds.sharded_by_keras and ds.shard == (process, 2)
        every = real_ids(ds)
        assert len(every) == 2 * len(expected[process])  # every process's batches
        taken = every[process::2]  # what Keras's PyDatasetAdapter feeds this process
        assert [b.tolist() for b in taken] == [b.tolist() for b in expected[process]]


def test_a_shard_given_by_hand_under_keras_own_sharding_is_refused(keras_shards):
    keras_shards(KerasShardingDistribution(0))
    ids = np.arange(N)
    with pytest.raises(ValueError, match=r"read a shard of a shard.*auto_shard_dataset=False"):
        MultimodalDataset(ids, ids, batch_size=5, shard=(0, 2), pad_remainder=True)


def test_without_auto_sharding_the_dataset_shards_itself(keras_shards):
    keras_shards(KerasShardingDistribution(1, auto_shard_dataset=False))
    ids = np.arange(N)
    ds = MultimodalDataset(ids, ids, batch_size=5, pad_remainder=True)
    assert not ds.sharded_by_keras and ds.shard == (1, 2)


def test_a_distribution_set_after_the_dataset_was_built_fails_at_the_start_of_fit(keras_shards):
    ids = np.arange(N)
    ds = MultimodalDataset(ids, ids, batch_size=5, pad_remainder=True)
    keras_shards(KerasShardingDistribution(0))
    with pytest.raises(ValueError, match="set \\(or changed\\) after the dataset was built"):
        ds.on_epoch_begin()  # what Keras calls as an epoch of fit begins


def test_keras_before_3_11_refuses_py_datasets_across_processes_so_the_dataset_says_so(
    monkeypatch,
):
    distribution = KerasShardingDistribution(0, auto_shard_dataset=False)
    distribution._is_multi_process = True
    monkeypatch.setattr(keras.distribution, "distribution", lambda: distribution)
    monkeypatch.setattr(keras, "version", lambda: "3.10.0")
    ids = np.arange(N)
    with pytest.raises(ValueError, match=r"Keras 3\.10\.0 trains .* only from a tf\.data"):
        MultimodalDataset(ids, ids, batch_size=5, pad_remainder=True)
    monkeypatch.setattr(keras, "version", lambda: "3.11.0")
    assert MultimodalDataset(ids, ids, batch_size=5, pad_remainder=True).shard == (0, 2)
