"""The Source protocol: a user's own source feeds a dataset and fit; bad samples either
raise naming the sample or are replaced and reported once per epoch, never silently."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from multimodal_dataset import (
    GatherContext,
    MultimodalDataset,
    ReplacedSamplesWarning,
    SampleError,
)
from worker_sources import Squares


@pytest.mark.keras
def test_a_custom_source_feeds_a_dataset_and_declares_its_spec_without_reading():
    ds = MultimodalDataset((Squares(10), np.ones((10, 3))), np.arange(10), batch_size=4, seed=0)
    assert ds.element_spec[0][0].shape == (None, 2) and ds.element_spec[0][0].dtype == "float32"
    (squares, _), y = ds[0]
    np.testing.assert_array_equal(squares, np.stack([y, y**2], axis=1))


@pytest.mark.backend
def test_a_custom_source_trains_through_fit():
    ds = MultimodalDataset(Squares(64), np.arange(64) % 2, batch_size=16, seed=0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


@pytest.mark.keras
def test_a_source_returning_another_dtype_than_it_declares_is_caught():
    ds = MultimodalDataset(Squares(4, dtype="float64"), batch_size=2)
    with pytest.raises(TypeError, match="must return exactly its declared shape and dtype"):
        ds[0]


@pytest.mark.keras
def test_a_bad_sample_raises_naming_the_input_and_sample_and_how_to_continue():
    ds = MultimodalDataset({"sq": Squares(8, bad={5})}, batch_size=8, shuffle=False)
    with pytest.raises(SampleError, match=r"inputs\['sq'\]: sample 5: square 5 is unreadable"):
        ds[0]


def epochs_of(ds, count):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(count):
            for i in range(len(ds)):
                ds[i]
            ds[0]  # read twice in an epoch (as fit does once): still reported once
            ds.on_epoch_end()
    return [str(w.message) for w in caught if w.category is ReplacedSamplesWarning]


@pytest.mark.keras
def test_replaced_samples_are_counted_and_reported_at_the_end_of_every_epoch(worker_mode):
    ds = MultimodalDataset(
        Squares(30, bad={3, 17}, on_error="replace"), np.arange(30), batch_size=8, **worker_mode
    )
    try:
        reports = epochs_of(ds, 3)
    finally:
        ds.close()
    assert len(reports) == 3
    assert all("2 samples were replaced" in r and "sample 3" in r for r in reports)
    assert "epoch 0" in reports[0] and "epoch 2" in reports[2]
    assert sorted((r.epoch, r.sample) for r in ds.replacements) == [
        (e, s) for e in range(3) for s in (3, 17)
    ]
    assert all(r.field == "inputs" and "unreadable" in r.reason for r in ds.replacements)


@pytest.mark.keras
def test_an_epoch_without_bad_samples_reports_nothing():
    ds = MultimodalDataset(Squares(10, on_error="replace"), batch_size=5)
    assert epochs_of(ds, 2) == [] and ds.replacements == []


def test_a_replacement_outside_raise_mode_fills_the_sample_and_records_it():
    source = Squares(4, bad={1}, on_error="replace")
    context = GatherContext(field="x", seed=0, epoch=0)
    out = source.gather(np.array([1, 2]), context)
    np.testing.assert_array_equal(out, [[0, 0], [2, 4]])
    assert context.replaced == [(1, "sample 1: square 1 is unreadable")]
