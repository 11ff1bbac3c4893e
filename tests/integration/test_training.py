"""Real `model.fit` on the active backend: the reference model learns from a
MultimodalDataset, and every sample reaches the training step exactly once per epoch in
every worker mode."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from conftest import Recorder, RecordIds
from multimodal_dataset import MultimodalDataset, models, synthetic, testing

MODALITIES = ("image", "text", "numeric")


@pytest.fixture(scope="module")
def trained():
    """The reference model fitted from a MultimodalDataset on the active backend."""
    keras.utils.set_random_seed(0)
    (img, txt, num), y = synthetic.make_multimodal(3600, seed=0)
    split = 3000
    train = MultimodalDataset(
        (img[:split], txt[:split], num[:split]), y[:split], batch_size=64, seed=0
    )
    val_inputs = {"image": img[split:], "text": txt[split:], "numeric": num[split:]}
    val = MultimodalDataset(val_inputs, y[split:], batch_size=128)
    model = models.build_reference_model(seed=0)
    train.check(model)
    history = model.fit(train, validation_data=val, epochs=8, verbose=0)
    return model, history.history, val_inputs, y[split:]


@pytest.mark.backend
def test_loss_falls(trained):
    _, history, _, _ = trained
    assert history["loss"][-1] < 0.5 * history["loss"][0]


@pytest.mark.backend  # the module's fit: built by whichever test of a worker comes first
def test_validation_accuracy_is_far_above_chance(trained):
    _, history, _, _ = trained
    assert history["val_accuracy"][-1] > 0.85  # chance is 0.5


@pytest.mark.backend
@pytest.mark.parametrize("modality", MODALITIES)
def test_each_input_matters(trained, modality):
    model, _, inputs, y = trained
    full = model.evaluate(
        MultimodalDataset(inputs, y, batch_size=128), verbose=0, return_dict=True
    )["accuracy"]
    blinded = dict(inputs, **{modality: np.zeros_like(inputs[modality])})
    without = model.evaluate(
        MultimodalDataset(blinded, y, batch_size=128), verbose=0, return_dict=True
    )["accuracy"]
    assert without < full - 0.08, f"zeroing {modality}: {without:.3f} vs {full:.3f}"


@pytest.mark.backend
def test_predict_keeps_sample_order_for_inference_datasets(trained):
    model, _, inputs, _ = trained
    expected = model.predict_on_batch(tuple(inputs[m][:100] for m in MODALITIES))
    got = model.predict(
        MultimodalDataset({m: inputs[m][:100] for m in MODALITIES}, batch_size=32), verbose=0
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def fit_and_record(ds, epochs):
    recorder = Recorder()
    features = keras.Input((2,))
    model = keras.Model(features, keras.layers.Dense(1)(features))
    model.compile(optimizer="sgd", loss="mse", metrics=[RecordIds(recorder)], run_eagerly=True)
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[recorder])
    return recorder.epochs


def id_dataset(n, **kwargs):
    ids = np.arange(n)
    features = np.stack([ids, -ids], axis=1).astype("float32")
    return MultimodalDataset(features, ids, batch_size=8, seed=11, **kwargs)


def assert_exactly_once(epochs, n, drop_remainder=False):
    orders = [np.concatenate(batches) for batches in epochs]
    for ids in orders:
        if drop_remainder:
            assert len(ids) == n // 8 * 8 and len(np.unique(ids)) == len(ids)
        else:
            np.testing.assert_array_equal(np.sort(ids), np.arange(n))
    for first, second in itertools.pairwise(orders):
        assert not np.array_equal(first, second)


@pytest.mark.backend
@pytest.mark.parametrize("drop_remainder", [False, True])
def test_every_sample_reaches_the_training_step_once_per_epoch(worker_mode, drop_remainder):
    epochs = fit_and_record(id_dataset(61, drop_remainder=drop_remainder, **worker_mode), epochs=3)
    assert len(epochs) == 3
    assert_exactly_once(epochs, 61, drop_remainder)


class HandWritten(keras.utils.PyDataset):
    """The seed-style PyDataset: batch i of a per-epoch permutation, reshuffled on epoch end."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n, self.epoch = n, 0

    def __len__(self):
        return -(-self.n // 8)

    def __getitem__(self, i):
        ids = np.random.default_rng(self.epoch).permutation(self.n)[i * 8 : (i + 1) * 8]
        return np.stack([ids, -ids], axis=1).astype("float32"), ids

    def on_epoch_end(self):
        self.epoch += 1


@pytest.mark.backend
def test_keras_own_worker_pool_repeats_samples_which_is_why_workers_run_in_the_dataset(backend):
    """A canary: if Keras stops serving stale batches across epochs on JAX and PyTorch,
    this fails, and the dataset's own workers (multimodal_dataset.engine.gatherer) can hand
    parallelism back to Keras."""
    epochs = fit_and_record(HandWritten(61, workers=3), epochs=2)
    distinct = [len(np.unique(np.concatenate(batches))) for batches in epochs]
    if backend == "tensorflow":
        assert distinct == [61, 61]  # measured: TensorFlow's fit leaves no stale batch
    else:
        assert min(distinct) < 61


@pytest.mark.backend
def test_sample_weights_reach_the_loss():
    x = np.ones((32, 1), dtype="float32")
    y = np.ones((32, 1), dtype="float32")
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="zeros", use_bias=False)]
    )
    model.compile(optimizer="sgd", loss="mse")
    weighted = model.evaluate(MultimodalDataset(x, y, np.full(32, 3.0), batch_size=8), verbose=0)
    plain = model.evaluate(MultimodalDataset(x, y, batch_size=8), verbose=0)
    assert weighted == pytest.approx(3 * plain)


@pytest.mark.keras
def test_the_batch_stream_is_identical_on_every_backend():
    """The digest of two epochs of batches is a golden value that every backend's test
    session must reproduce."""
    (img, txt, num), y = synthetic.make_multimodal(300, seed=0)
    ds = MultimodalDataset((img, txt, num), y, np.linspace(0, 1, 300), batch_size=32, seed=0)
    assert testing.stream_digest(ds, epochs=2) == STREAM_DIGEST


STREAM_DIGEST = "49269d089f1b74dc7ecac107c2c2ac2908505b9b468952b5079b881b059a15f4"


@pytest.mark.backend
def test_the_same_seed_trains_on_the_same_stream_with_fits_default_shuffle():
    """Keras 3.15 and older reorder batch requests with Python's unseeded random under
    fit(shuffle=True); the dataset serves its own order whatever Keras asks for."""
    import random

    streams = []
    for python_seed, shuffle in ((1, True), (2, True), (3, False)):
        random.seed(python_seed)
        epochs = fit_and_record(id_dataset(61), epochs=2) if shuffle else None
        if not shuffle:
            recorder = Recorder()
            features = keras.Input((2,))
            model = keras.Model(features, keras.layers.Dense(1)(features))
            model.compile("sgd", "mse", metrics=[RecordIds(recorder)], run_eagerly=True)
            model.fit(id_dataset(61), epochs=2, verbose=0, shuffle=False, callbacks=[recorder])
            epochs = recorder.epochs
        streams.append([np.concatenate(batches).tolist() for batches in epochs])
    assert streams[0] == streams[1] == streams[2]
    ds = id_dataset(61)  # fit's first epoch is the dataset's epoch 0
    expected = [ds.batch_indices(i).tolist() for i in range(len(ds))]
    assert streams[0][0] == [i for batch in expected for i in batch]


@pytest.mark.keras
def test_outside_keras_epochs_a_batch_index_is_the_batch_asked_for():
    ds = id_dataset(61)
    np.testing.assert_array_equal(ds[5][1], ds.batch_indices(5))
    np.testing.assert_array_equal(ds[2][1], ds.batch_indices(2))


@pytest.mark.backend
def test_replacements_are_reported_once_per_training_epoch_not_for_keras_build_reads(
    image_files, tmp_path
):
    from multimodal_dataset import ImageFiles, ReplacedSamplesWarning

    paths = list(image_files)
    for bad in (3, 8):
        paths[bad] = tmp_path / f"missing{bad}.png"
    source = ImageFiles(paths, size=(8, 8), on_error="replace")
    ds = MultimodalDataset(source, np.arange(12) % 2, batch_size=4, seed=0)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.warns(ReplacedSamplesWarning) as caught:
        model.fit(ds, epochs=3, verbose=0)
    reports = [w for w in caught if issubclass(w.category, ReplacedSamplesWarning)]
    assert len(reports) == 3, [str(w.message) for w in reports]
    assert all("2 samples were replaced" in str(w.message) for w in reports)
    assert sorted((r.epoch, r.sample) for r in ds.replacements) == [
        (e, s) for e in (0, 1, 2) for s in (3, 8)
    ]


@pytest.mark.backend
def test_a_sample_error_during_fit_reaches_the_caller(image_files, tmp_path, backend):
    """On TensorFlow, Keras reads the dataset inside tf.data, which re-raises what the
    dataset raised as tf.errors.InvalidArgumentError with the message kept (documented)."""
    from multimodal_dataset import ImageFiles, SampleError

    paths = list(image_files)
    paths[11] = tmp_path / "missing.png"  # in the last batch: not read to build the model
    ds = MultimodalDataset(
        ImageFiles(paths, size=(8, 8)), np.arange(12) % 2, batch_size=4, shuffle=False
    )
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    expected = SampleError
    if backend == "tensorflow":
        import tensorflow as tf

        expected = tf.errors.InvalidArgumentError
    with pytest.raises(expected) as info:
        model.fit(ds, epochs=1, verbose=0)
    assert "inputs: sample 11" in str(info.value) and "missing.png" in str(info.value)
