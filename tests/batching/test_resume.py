"""Resumable state: get_state/set_state continue the stream, a state from another dataset
is refused, and a fit resumed by BackupAndRestore sees the uninterrupted run's batches."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from conftest import Recorder, RecordIds
from multimodal_dataset import MultimodalDataset

pytestmark = pytest.mark.keras


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


@pytest.mark.backend
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


def sharded(count, index, batch_size, n=48):
    return MultimodalDataset(
        np.arange(n), np.arange(n), batch_size=batch_size, seed=4, shard=(index, count)
    )


@pytest.mark.parametrize(("before", "after"), [(2, 1), (1, 2), (2, 4)])
def test_a_state_saved_by_n_processes_continues_on_m_with_the_same_global_order(before, after):
    global_batch = 8
    old = [sharded(before, i, global_batch // before) for i in range(before)]
    for ds in old:  # one epoch, then three steps of the next
        for i in range(len(ds)):
            ds[i]
        ds.on_epoch_end()
        for i in range(3):
            ds[i]
    state = old[0].get_state()
    expected = [sorted(np.concatenate([ds[i][1] for ds in old]).tolist()) for i in range(3, 6)]

    new = [sharded(after, i, global_batch // after) for i in range(after)]
    for ds in new:
        ds.set_state(state)
        assert ds.get_state()["position"] == 3 and ds.epoch == 1
    steps = [sorted(np.concatenate([ds[i][1] for ds in new]).tolist()) for i in range(3, 6)]
    assert steps == expected


def test_a_state_from_another_global_batch_names_the_batch_size_to_use():
    state = sharded(2, 0, 4).get_state()
    with pytest.raises(ValueError, match=r"global batch of 8.*global batch of 4.*batch_size=8"):
        sharded(1, 0, 4).set_state(state)
