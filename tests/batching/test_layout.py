"""BatchLayout: the groups of a batch built from the user's structures, their lengths
checked, padding weights added, and gathered arrays packed into the batch Keras reads."""

from __future__ import annotations

import numpy as np
import pytest

from multimodal_dataset import ArraySpec, BatchLayout


def test_a_layout_packs_inputs_targets_and_weights_in_batch_order():
    layout = BatchLayout.build(
        {"a": np.zeros((4, 2)), "b": np.zeros(4, "int64")},
        np.arange(4),
        np.ones(4),
        floatx="float32",
    )
    assert [f.name for f in layout.fields] == [
        "inputs['a']",
        "inputs['b']",
        "targets",
        "sample_weights",
    ]
    batch = layout.pack([np.ones((2, 2)), np.ones(2), np.arange(2), np.ones(2)])
    assert isinstance(batch, tuple) and set(batch[0]) == {"a", "b"} and len(batch) == 3


def test_the_element_spec_is_known_without_reading_any_data():
    class Unreadable(np.ndarray):
        def __getitem__(self, key):
            raise AssertionError("read")

    data = np.zeros((5, 3), "float64").view(Unreadable)
    spec = BatchLayout.build(data, floatx="float32").element_spec
    assert spec == (ArraySpec((None, 3), "float32", "inputs"),)


def test_padding_adds_weights_of_one_and_packing_zeroes_the_padding():
    layout = BatchLayout.build(np.zeros((5, 1)), np.arange(5), floatx="float32", pad_remainder=True)
    assert layout.pads and layout.weights is not None
    weights = np.ones(4, "float32")
    _, _, packed = layout.pack([np.zeros((4, 1)), np.arange(4), weights], real=3)
    np.testing.assert_array_equal(packed, [1, 1, 1, 0])


def test_arrays_of_unequal_length_are_each_named():
    with pytest.raises(ValueError, match="inputs\\[0\\] has 3, inputs\\[1\\] has 4"):
        BatchLayout.build((np.zeros(3), np.zeros(4)), floatx="float32")
