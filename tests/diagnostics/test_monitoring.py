"""ds.stats and ds.monitor(): where an epoch's time goes, measured on every backend."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest

from multimodal_dataset import MultimodalDataset
from multimodal_dataset.sources.protocol import Source

pytestmark = pytest.mark.keras

SAMPLES, BATCH = 96, 8


class SlowSource(Source):
    """Numbers that take ``delay_s`` per batch to produce, as a slow decoder would."""

    work = "pretend decoding"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    @property
    def shape(self) -> tuple[int, ...]:
        return (SAMPLES, 4)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("float32")

    def gather(self, indices, context):
        time.sleep(self.delay_s)
        return np.ones((len(indices), 4), "float32")

    def speedup_hint(self) -> str:
        return "a faster pretend decoder"


class SlowStep(keras.callbacks.Callback):
    """Makes every training step take ``delay_s`` longer, as a big model would."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.delay_s)


def small_model() -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    return model


@pytest.mark.backend
@pytest.mark.timed
def test_a_slow_source_makes_training_input_bound_and_the_monitor_says_what_to_try(capsys):
    # No prefetch: what is measured is the loop waiting for each batch in full (with
    # prefetch=2, two batches overlap their loads and the loop waits about half as long).
    ds = MultimodalDataset(
        SlowSource(0.02), np.zeros(SAMPLES, "float32"), batch_size=BATCH, prefetch=0
    )
    small_model().fit(ds, epochs=3, verbose=0, callbacks=[ds.monitor()])
    stats = ds.stats
    assert [s["epoch"] for s in stats] == [0, 1, 2]
    for record in stats[1:]:  # the first epoch also compiles the step
        assert record["input_bound"], record
        assert record["wait_fraction"] > 0.5, record
        assert record["steps"] == record["batches"] == SAMPLES // BATCH
        assert record["wait_s"] <= record["train_s"]
        assert record["produce_s"] >= 0.02 * record["batches"]
    printed = capsys.readouterr().out
    assert "epoch 2: input-bound:" in printed
    assert "pretend decoding (inputs) takes" in printed
    assert "a faster pretend decoder" in printed


@pytest.mark.backend
@pytest.mark.timed
def test_a_slow_step_with_fast_data_is_not_input_bound(capsys):
    ds = MultimodalDataset(SlowSource(0.0), np.zeros(SAMPLES, "float32"), batch_size=BATCH)
    small_model().fit(ds, epochs=3, verbose=0, callbacks=[ds.monitor(), SlowStep(0.03)])
    for record in ds.stats[1:]:
        assert not record["input_bound"], record
        assert record["wait_fraction"] < 0.2, record
    assert "epoch 2: not input-bound" in capsys.readouterr().out


@pytest.mark.backend
def test_the_wait_is_measured_where_keras_reads_the_dataset(backend):
    """On TensorFlow a tf.data thread reads ahead; on JAX and PyTorch the training loop."""
    ds = MultimodalDataset(SlowSource(0.01), np.zeros(SAMPLES, "float32"), batch_size=BATCH)
    small_model().fit(ds, epochs=2, verbose=0, callbacks=[ds.monitor(verbose=False)])
    in_loop = [s["read_in_training_thread"] for s in ds.stats]
    assert in_loop == [backend != "tensorflow"] * 2


@pytest.mark.backend
def test_stats_count_each_epochs_batches_without_the_monitor_and_without_keras_preview():
    ds = MultimodalDataset(SlowSource(0.0), np.zeros(SAMPLES, "float32"), batch_size=BATCH)
    small_model().fit(ds, epochs=2, verbose=0)
    assert [(s["epoch"], s["batches"], s["samples"]) for s in ds.stats] == [
        (0, SAMPLES // BATCH, SAMPLES),
        (1, SAMPLES // BATCH, SAMPLES),
    ]
    assert set(ds.stats[0]["fields_s"]) == {"inputs", "targets"}
    assert "wait_s" not in ds.stats[0]


@pytest.mark.parametrize("workers", [1, 3])
def test_field_seconds_add_up_over_the_workers_that_share_a_batch(workers):
    ds = MultimodalDataset(
        SlowSource(0.01), np.zeros(SAMPLES, "float32"), batch_size=BATCH, workers=workers
    )
    for i in range(len(ds)):
        ds[i]
    ds.on_epoch_end()
    record = ds.stats[0]
    # Each worker's chunk sleeps once: three workers spend about three times the time.
    assert record["fields_s"]["inputs"] >= 0.01 * workers * len(ds)
    ds.close()


def test_stats_are_copies_the_caller_may_change():
    ds = MultimodalDataset(np.ones((4, 2), "float32"), np.zeros(4, "float32"), batch_size=2)
    ds[0], ds[1]
    ds.on_epoch_end()
    ds.stats[0]["epoch"] = 99
    ds.stats[0]["fields_s"]["inputs"] = -1.0
    assert ds.stats[0]["epoch"] == 0
    assert ds.stats[0]["fields_s"]["inputs"] >= 0
