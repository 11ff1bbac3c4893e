"""`fit(steps_per_epoch=k)` with `k` below `len(ds)`: Keras's epochs cut the dataset's
epochs short, and the next Keras epoch continues where the last one stopped, as with
Keras's own `PyDataset`: every sample exactly once per dataset epoch, the same stream on
every backend (TensorFlow's tf.data reads ahead across Keras's epochs)."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from conftest import Recorder, RecordIds
from multimodal_dataset import MultimodalDataset, PartialEpochWarning

pytestmark = pytest.mark.backend

N, BATCH = 40, 4  # 10 batches per epoch


def id_dataset(**kwargs):
    ids = np.arange(N)
    features = np.stack([ids, -ids], axis=1).astype("float32")
    return MultimodalDataset(features, ids, batch_size=BATCH, seed=1, **kwargs)


def trained_stream(ds, *fits):
    """The sample ids each fit epoch trained on, for one model fitted once per kwargs."""
    recorder = Recorder()
    features = keras.Input((2,))
    model = keras.Model(features, keras.layers.Dense(1)(features))
    model.compile("sgd", "mse", metrics=[RecordIds(recorder)], run_eagerly=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Your input ran out of data")
        for kwargs in fits:
            callbacks = [recorder, *kwargs.pop("callbacks", [])]
            model.fit(ds, verbose=0, callbacks=callbacks, **kwargs)
    return recorder.epochs


def reads_ahead(backend):
    """Whether Keras reads batches ahead of the training steps on this backend."""
    from multimodal_dataset.engine.keras_loop import trainer_prefetches

    return backend == "tensorflow" or trainer_prefetches()


def dataset_order(epochs, **kwargs):
    """The samples of the dataset's first ``epochs`` epochs, in order."""
    ds = id_dataset(**kwargs)
    order = []
    for _ in range(epochs):
        order += [ds.batch_indices(i) for i in range(len(ds))]
        ds.on_epoch_end()
    return np.concatenate(order)


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("shuffle", [True, False])
def test_partial_fit_epochs_continue_the_dataset_epoch(prefetch, shuffle):
    ds = id_dataset(prefetch=prefetch)
    epochs = trained_stream(ds, dict(epochs=8, steps_per_epoch=3, shuffle=shuffle))
    # Keras reads its pass of 10 batches in fit epochs of 3, 3, 3 and the 1 left.
    assert [len(e) for e in epochs] == [3, 3, 3, 1, 3, 3, 3, 1]
    stream = np.concatenate([ids for epoch in epochs for ids in epoch])
    np.testing.assert_array_equal(stream, dataset_order(2))
    for first in (0, N):
        np.testing.assert_array_equal(np.sort(stream[first : first + N]), np.arange(N))
    assert ds.epoch == 2 and [s["epoch"] for s in ds.stats] == [0, 1]


def test_steps_per_epoch_above_len_serves_whole_epochs():
    """Keras stops each epoch when the dataset's batches run out (with its own warning)."""
    ds = id_dataset()
    epochs = trained_stream(ds, dict(epochs=2, steps_per_epoch=25))
    assert [len(e) for e in epochs] == [10, 10]
    np.testing.assert_array_equal(
        np.concatenate([ids for epoch in epochs for ids in epoch]), dataset_order(2)
    )


def test_a_later_fit_continues_the_epoch_a_partial_fit_left(backend):
    ds = id_dataset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        epochs = trained_stream(ds, dict(epochs=1, steps_per_epoch=3), dict(epochs=2))
    assert [len(e) for e in epochs] == [3, 10, 10]
    stream = np.concatenate([ids for epoch in epochs for ids in epoch])
    lost = [w for w in caught if issubclass(w.category, PartialEpochWarning)]
    order = dataset_order(3)
    np.testing.assert_array_equal(stream[: 3 * BATCH], order[: 3 * BATCH])
    if not reads_ahead(backend):
        np.testing.assert_array_equal(stream, order[: len(stream)])
        assert not lost
    else:
        # tf.data (or older Keras's JAX prefetch) read batches ahead that the first fit
        # did not train: skipped (never served twice), and said, not silent.
        assert len(lost) == 1 and "middle of epoch 0" in str(lost[0].message)
        later = stream[3 * BATCH :]
        assert any(
            np.array_equal(later, order[k * BATCH : k * BATCH + len(later)]) for k in (4, 5, 6)
        )


def test_fit_epochs_are_the_dataset_epochs_and_stats_count_only_them():
    """Keras reads batches before training (to build the model; on TensorFlow also to
    infer the signature): they are served again and are no epoch, also in a second fit."""
    ds = id_dataset()
    epochs = trained_stream(ds, dict(epochs=2), dict(epochs=2))
    np.testing.assert_array_equal(
        np.concatenate([ids for epoch in epochs for ids in epoch]), dataset_order(4)
    )
    assert ds.epoch == 4
    assert [(s["epoch"], s["batches"]) for s in ds.stats] == [(e, 10) for e in range(4)]


def test_the_epoch_callback_keeps_partial_epochs_and_resumes_at_a_fit_epoch():
    """With ds.epoch_callback(), fit epoch k reads the same batches whether the run went
    straight through or restarted at k (initial_epoch, as BackupAndRestore does)."""
    straight = id_dataset()
    fits = dict(epochs=8, steps_per_epoch=3)
    whole = trained_stream(straight, dict(fits, callbacks=[straight.epoch_callback()]))
    resumed = id_dataset()
    later = trained_stream(
        resumed, dict(fits, initial_epoch=5, callbacks=[resumed.epoch_callback()])
    )
    assert [len(e) for e in whole] == [3, 3, 3, 1, 3, 3, 3, 1]
    np.testing.assert_array_equal(
        np.concatenate([ids for epoch in whole for ids in epoch]), dataset_order(2)
    )
    # Keras counts its pass from the start of each fit, so the resumed run's fit epoch 7
    # takes 3 steps where the straight one took the 1 left; the stream is the same.
    assert [len(e) for e in later] == [3, 3, 3]
    resumed_stream = np.concatenate([ids for epoch in later for ids in epoch])
    start = 5 * 3 * BATCH - 2 * BATCH  # fit epochs 0-4: 3 + 3 + 3 + 1 + 3 batches
    np.testing.assert_array_equal(resumed_stream, dataset_order(3)[start : start + 9 * BATCH])
