"""Prefetching: the next batches are produced while the training step runs, keyed by
(epoch, batch): never served in another epoch or twice, errors raised where they belong,
nothing left running after fit."""

from __future__ import annotations

import threading
import time

import keras
import numpy as np
import pytest

from multimodal_dataset import MultimodalDataset
from multimodal_dataset.sources.protocol import Source

pytestmark = pytest.mark.keras

SAMPLES, BATCH = 96, 8


class Slow(Source):
    """Sample ids as numbers, ``load_s`` per batch (a sleep: releases the GIL, as decoding
    does); optionally raising for one sample."""

    def __init__(self, load_s: float, bad: int | None = None) -> None:
        self.load_s, self.bad = load_s, bad

    @property
    def shape(self):
        return (SAMPLES, 1)

    @property
    def dtype(self):
        return np.dtype("float32")

    def gather(self, indices, context):
        time.sleep(self.load_s)
        if self.bad is not None and self.bad in indices:
            raise ValueError(f"sample {self.bad} is bad")
        return indices[:, None].astype("float32")


class Step(keras.callbacks.Callback):
    """A training step of known cost that releases the GIL, as a device step does."""

    def __init__(self, compute_s: float) -> None:
        super().__init__()
        self.compute_s = compute_s

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.compute_s)


class Seen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def model():
    m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    m.compile("sgd", "mse")
    return m


def epoch_times(prefetch, load_s, compute_s):
    ds = MultimodalDataset(
        Slow(load_s), np.zeros(SAMPLES, "float32"), batch_size=BATCH, prefetch=prefetch
    )
    seen = Seen()
    model().fit(ds, epochs=3, verbose=0, callbacks=[Step(compute_s), seen])
    return seen.times[1:]  # the first epoch also compiles


@pytest.mark.backend
@pytest.mark.timed
def test_loading_overlaps_the_step_so_an_epoch_takes_less_than_load_plus_compute(backend):
    load_s = compute_s = 0.03
    serial = SAMPLES // BATCH * (load_s + compute_s)
    assert min(epoch_times(None, load_s, compute_s)) < 0.8 * serial
    if backend != "tensorflow":  # TensorFlow's tf.data reads ahead by itself
        assert min(epoch_times(0, load_s, compute_s)) > 0.9 * serial  # what it saves


class MatrixProducts(keras.layers.Layer):
    """A real training step of some cost: a chain of matrix products, run by XLA, the
    TensorFlow runtime or torch's kernels, none of which holds Python's GIL meanwhile."""

    SIZE, REPEATS = 384, 12

    def call(self, x):
        # Depends on the batch, so that no compiler folds it into a constant.
        m = keras.ops.ones((self.SIZE, self.SIZE)) / self.SIZE + 1e-6 * keras.ops.mean(x)
        product = m
        for _ in range(self.REPEATS):
            product = keras.ops.matmul(product, m)
        return x + 1e-9 * keras.ops.mean(product)


def real_step_epoch(load_s, prefetch):
    """Seconds of each epoch after the first, training a model whose step is
    `MatrixProducts` on a source taking ``load_s`` per batch."""
    inputs = keras.Input((1,))
    m = keras.Model(inputs, keras.layers.Dense(1)(MatrixProducts()(inputs)))
    m.compile("sgd", "mse")
    ds = MultimodalDataset(
        Slow(load_s), np.zeros(SAMPLES, "float32"), batch_size=BATCH, prefetch=prefetch
    )
    seen = Seen()
    # The fastest of four epochs after the first: one epoch is about 0.1 s, and a
    # moment's load on a shared machine (a CI run missed the bound by 2% with the best
    # of two) must not decide the comparison.
    m.fit(ds, epochs=5, verbose=0, callbacks=[seen])
    ds.close()
    return min(seen.times[1:])


@pytest.mark.backend
@pytest.mark.timed
def test_loading_overlaps_a_real_backend_op_so_an_epoch_takes_less_than_load_plus_compute():
    # The step's cost on this machine: an epoch with nothing to load.
    compute = real_step_epoch(0.0, prefetch=0)
    load_s = min(max(compute / (SAMPLES // BATCH), 0.002), 0.1)  # about one step's cost
    serial = compute + SAMPLES // BATCH * load_s
    assert real_step_epoch(load_s, prefetch=None) < 0.8 * serial


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_every_sample_once_per_epoch_in_the_same_order_whatever_the_depth(prefetch):
    def stream(depth):
        ds = MultimodalDataset(
            Slow(0.0), np.arange(SAMPLES), batch_size=BATCH, seed=4, prefetch=depth
        )
        ids = []
        for _ in range(3):
            ds.on_epoch_begin()
            ids.append(np.concatenate([ds[i][0][:, 0] for i in range(len(ds))]).astype(int))
            ds.on_epoch_end()
        ds.close()
        return ids

    reference = stream(0)
    got = stream(prefetch)
    for epoch, ids in enumerate(got):
        assert sorted(ids) == list(range(SAMPLES)), epoch
        np.testing.assert_array_equal(ids, reference[epoch])


def test_batches_produced_ahead_serve_the_epoch_they_were_made_for_and_no_other():
    ds = MultimodalDataset(Slow(0.0), np.arange(SAMPLES), batch_size=BATCH, seed=1, prefetch=3)
    again = MultimodalDataset(Slow(0.0), np.arange(SAMPLES), batch_size=BATCH, seed=1)
    ds.on_epoch_begin()
    first = ds[0][0][:, 0]
    assert ds._prefetcher.pending == 3
    ds.on_epoch_end()  # a Keras epoch cut short (steps_per_epoch): the next one continues
    assert ds._prefetcher.pending == 3 and ds.epoch == 0
    ds.on_epoch_begin()
    np.testing.assert_array_equal(ds[0][0][:, 0], again[1][0][:, 0])
    ds.set_state(dict(ds.get_state(), epoch=1, position=0))  # batches 2-4 of epoch 0: dropped
    assert ds._prefetcher.pending == 0
    again.on_epoch_end()
    np.testing.assert_array_equal(ds[0][0][:, 0], again[0][0][:, 0])
    assert len(first) == BATCH
    ds.close()


def test_an_error_surfaces_at_the_batch_it_belongs_to():
    ds = MultimodalDataset(Slow(0.0, bad=0), np.arange(SAMPLES), batch_size=BATCH, shuffle=False)
    ds.on_epoch_begin()
    with pytest.raises(ValueError, match="sample 0 is bad"):
        ds[0]
    ds.on_epoch_end()
    ds = MultimodalDataset(
        Slow(0.0, bad=SAMPLES - 1), np.arange(SAMPLES), batch_size=BATCH, shuffle=False
    )
    ds.on_epoch_begin()
    for i in range(len(ds) - 1):  # produced ahead, the last batch's error waits for it
        ds[i]
    with pytest.raises(ValueError, match=f"sample {SAMPLES - 1} is bad"):
        ds[len(ds) - 1]
    ds.close()


@pytest.mark.backend
def test_nothing_keeps_running_after_fit(monkeypatch):
    from multimodal_dataset.engine import gatherer as workers_module

    # The pools' keep-alive is not what is tested here: a short one, then a deadline.
    monkeypatch.setattr(workers_module, "KEEP_ALIVE_S", 0.1)
    before = {t.ident for t in threading.enumerate()}
    ds = MultimodalDataset(Slow(0.001), np.zeros(SAMPLES, "float32"), batch_size=BATCH)
    model().fit(ds, epochs=2, verbose=0)

    def left():
        return [
            t.name
            for t in threading.enumerate()
            if t.ident not in before and t.name.startswith("multimodal_dataset")
        ]

    deadline = time.monotonic() + 0.1 + 5.0
    while left() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left() == []


@pytest.mark.parametrize("value", [-1, 1.5])
def test_prefetch_must_be_a_count_of_batches(value):
    with pytest.raises((ValueError, TypeError), match="prefetch"):
        MultimodalDataset(Slow(0.0), np.arange(SAMPLES), prefetch=value)


def epoch_seconds(prefetch, wait_s, batches=10):
    """One epoch read in order as Keras reads it, from a source that waits once per batch
    (a database or API call), with nothing between batches."""
    ds = MultimodalDataset(
        Slow(wait_s), np.arange(SAMPLES), batch_size=SAMPLES // batches, seed=0, prefetch=prefetch
    )
    ds.on_epoch_begin()
    start = time.perf_counter()
    ids = [ds[i][0][:, 0] for i in range(len(ds))]
    seconds = time.perf_counter() - start
    ds.on_epoch_end()
    ds.close()
    return seconds, np.concatenate(ids)


@pytest.mark.timed
def test_prefetch_k_keeps_k_batches_in_flight_for_a_source_that_waits_per_batch():
    serial, order = epoch_seconds(0, 0.1)
    one, order_one = epoch_seconds(1, 0.1)
    four, order_four = epoch_seconds(4, 0.1)
    assert serial > 0.95 and one > 0.9  # one at a time: the waits queue up
    assert four < 0.5 * serial, (serial, one, four)  # up to four waits overlap
    np.testing.assert_array_equal(order_one, order)  # the same batches, in order
    np.testing.assert_array_equal(order_four, order)
    np.testing.assert_array_equal(np.sort(order), np.arange(SAMPLES))
