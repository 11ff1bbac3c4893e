"""Keras's own `PyDataset` adapter tests (keras/src/trainers/data_adapters/
py_dataset_adapter_test.py, Keras 3.15), ported to `MultimodalDataset`: the batches reach
the backend's own iterator (tf.data, JAX, a torch DataLoader) with the structure, shapes
and dtypes Keras's tests check, in every worker mode, with class weights, dict inputs and
errors reported."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

from multimodal_dataset import MultimodalDataset
from worker_sources import ThirdBatchRaises

pytestmark = pytest.mark.backend


def native_iterator(adapter, backend):
    """What the backend's trainer iterates (as Keras's test does)."""
    if backend == "tensorflow":
        return adapter.get_tf_dataset()
    if backend == "jax":
        return adapter.get_jax_iterator()
    return adapter.get_torch_dataloader()


def example(shuffle, **kwargs):
    """Keras's ExamplePyDataset data: x random (64, 4), y = [[i, i]], batches of 16."""
    keras.utils.set_random_seed(1337)
    x = np.random.random((64, 4)).astype("float32")
    y = np.array([[i, i] for i in range(64)], dtype="float32")
    return MultimodalDataset(x, y, batch_size=16, shuffle=shuffle, seed=3, **kwargs)


@pytest.mark.parametrize(
    ("shuffle", "adapter_shuffle"), [(True, True), (False, True), (False, False)]
)
def test_basic_flow(backend, shuffle, adapter_shuffle):
    basic_flow(backend, shuffle, adapter_shuffle)


def test_basic_flow_in_every_worker_mode(backend, worker_mode):
    basic_flow(backend, True, True, **worker_mode)


def basic_flow(backend, shuffle, adapter_shuffle, **mode):
    ds = example(shuffle, **mode)
    adapter = PyDatasetAdapter(ds, shuffle=adapter_shuffle)
    it = native_iterator(adapter, backend)
    order = []
    adapter.on_epoch_begin()
    for batch in it:
        assert len(batch) == 2
        bx, by = (keras.ops.convert_to_numpy(b) for b in batch)
        assert bx.dtype == by.dtype == np.float32
        assert bx.shape == (16, 4) and by.shape == (16, 2)
        order += by[:, 0].astype(int).tolist()
    adapter.on_epoch_end()
    ds.close()
    # Keras's shuffle reorders batch requests; the dataset serves its own order.
    expected = example(shuffle)
    assert order == [int(i) for b in range(4) for i in expected.batch_indices(b)]
    assert sorted(order) == list(range(64))
    assert (order != list(range(64))) is shuffle


def test_class_weight(backend):
    x = np.random.default_rng(0).integers(1, 100, (4, 5)).astype("float32")
    y = np.array([0, 1, 2, 1])
    class_weight = {0: 2, 1: 1, 2: 3}
    ds = MultimodalDataset(x, y, batch_size=2, shuffle=False)
    adapter = PyDatasetAdapter(ds, shuffle=False, class_weight=class_weight)
    batches = list(native_iterator(adapter, backend))
    assert len(batches) == 2
    for index, batch in enumerate(batches):
        bx, by, bw = (keras.ops.convert_to_numpy(b) for b in batch)
        np.testing.assert_array_equal(bx, x[index * 2 : index * 2 + 2])
        np.testing.assert_array_equal(by, y[index * 2 : index * 2 + 2])
        np.testing.assert_array_equal(bw, [class_weight[int(c)] for c in by])


def test_dict_inputs(backend):
    rng = np.random.default_rng(0)
    inputs = {"x": rng.random((40, 4)).astype("float32"), "z": rng.random((40, 2))}
    ds = MultimodalDataset(inputs, np.zeros(40, "float32"), batch_size=4, shuffle=False)
    for batch in native_iterator(PyDatasetAdapter(ds, shuffle=False), backend):
        bx, _ = batch
        assert set(bx) == {"x", "z"}
        assert tuple(bx["x"].shape) == (4, 4) and tuple(bx["z"].shape) == (4, 2)
        assert keras.ops.convert_to_numpy(bx["z"]).dtype == keras.config.floatx()


def test_exception_reported(backend, worker_mode):
    ds = MultimodalDataset(
        ThirdBatchRaises(), np.zeros(12, "float32"), batch_size=4, shuffle=False, **worker_mode
    )
    it = iter(native_iterator(PyDatasetAdapter(ds, shuffle=False), backend))
    expected = ValueError
    if backend == "tensorflow":
        import tensorflow as tf

        expected = tf.errors.InvalidArgumentError  # tf.data wraps the exception
    next(it)
    next(it)
    with pytest.raises(expected, match="Expected exception"):
        next(it)
    ds.close()
