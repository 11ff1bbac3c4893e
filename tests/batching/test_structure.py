"""Batch structure and dtype policy: what Keras receives for each kind of user input."""

from __future__ import annotations

import re

import keras
import numpy as np
import pandas as pd
import pytest

from multimodal_dataset import ArraySpec, MultimodalDataset

pytestmark = pytest.mark.keras

FLOATX = keras.config.floatx()


def flat(structure):
    return keras.tree.flatten(structure)


@pytest.mark.parametrize(
    ("make_inputs", "expected_x"),
    [
        pytest.param(lambda a: a[0], "array", id="one-array"),
        pytest.param(lambda a: a, "tuple", id="tuple"),
        pytest.param(lambda a: list(a), "tuple", id="list-becomes-tuple"),
        pytest.param(lambda a: {"image": a[0], "text": a[1], "numeric": a[2]}, "dict", id="dict"),
    ],
)
@pytest.mark.parametrize("with_targets,with_weights", [(False, False), (True, False), (True, True)])
def test_batches_are_a_top_level_tuple_with_tuple_or_dict_inputs(
    arrays, make_inputs, expected_x, with_targets, with_weights
):
    (img, txt, num), y = arrays
    ds = MultimodalDataset(
        make_inputs((img, txt, num)),
        y if with_targets else None,
        np.ones(len(y)) if with_weights else None,
        batch_size=4,
    )
    batch = ds[0]
    assert type(batch) is tuple
    assert len(batch) == 1 + with_targets + with_weights
    x = batch[0]
    if expected_x == "array":
        assert isinstance(x, np.ndarray)
    elif expected_x == "tuple":
        assert type(x) is tuple and len(x) == 3
    else:
        assert type(x) is dict and list(x) == ["image", "text", "numeric"]


def test_batch_values_follow_the_sample_indices(arrays):
    (img, txt, num), y = arrays
    ds = MultimodalDataset((img, txt, num), y, batch_size=4, seed=5)
    for i in range(len(ds)):
        (bi, bt, bn), by = ds[i]
        ids = ds.batch_indices(i)
        np.testing.assert_array_equal(by, ids)
        np.testing.assert_array_equal(bi[:, 0, 0, 0], ids)
        np.testing.assert_array_equal(bt[:, 0], ids)
        np.testing.assert_array_equal(bn[:, 1], ids)


def test_multi_output_targets_keep_their_tuple_or_dict_structure(arrays):
    (img, _txt, num), y = arrays
    as_tuple = MultimodalDataset(img, (y, y * 2), batch_size=4)
    as_dict = MultimodalDataset(img, {"label": y, "score": num}, batch_size=4)
    assert type(as_tuple[0][1]) is tuple and len(as_tuple[0][1]) == 2
    assert set(as_dict[0][1]) == {"label", "score"}


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        ("float16", FLOATX),
        ("float32", FLOATX),
        ("float64", FLOATX),
        ("bool", FLOATX),
        ("int8", "int32"),
        ("uint8", "int32"),
        ("int16", "int32"),
        ("int32", "int32"),
        ("int64", "int32"),
        ("uint32", "int32"),
        ("uint64", "int32"),
    ],
)
def test_dtype_policy_is_floatx_for_floats_and_int32_for_integers(dtype, expected):
    data = np.arange(24).reshape(12, 2).astype(dtype)
    ds = MultimodalDataset(data, data, batch_size=5)
    (x, y) = ds[0]
    assert x.dtype == expected and y.dtype == expected
    assert ds.element_spec[0].dtype == expected
    np.testing.assert_array_equal(x, data[ds.batch_indices(0)].astype(expected))


def test_sample_weights_are_always_floating(arrays):
    (img, _, _), y = arrays
    ds = MultimodalDataset(img, y, np.ones(len(y), dtype=np.int64), batch_size=4)
    assert ds[0][2].dtype == FLOATX


@pytest.mark.parametrize("bad", [2**31, -(2**31) - 1, 2**40])
def test_integers_outside_int32_are_an_error_not_a_silent_wrap(bad):
    ids = np.zeros((8, 3), dtype=np.int64)
    ids[5, 2] = bad
    ds = MultimodalDataset({"text": ids}, batch_size=8, shuffle=False)
    with pytest.raises(ValueError, match=r"inputs\['text'\].*int32 range.*sample 5"):
        ds[0]


@pytest.mark.parametrize(
    ("values", "dtype_name"),
    [
        (np.array(["a", "b"]), "<U1"),
        (np.array([b"a", b"b"]), "|S1"),
        (np.array([{"a": 1}, None], dtype=object), "object"),
        (np.array([1 + 2j, 3j]), "complex128"),
        (np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]"), "datetime64[D]"),
    ],
)
def test_unsupported_dtypes_are_rejected_at_construction_with_the_input_name(values, dtype_name):
    with pytest.raises(TypeError, match=r"inputs\[1\] has dtype " + re.escape(dtype_name)) as info:
        MultimodalDataset((np.zeros((2, 3)), values), batch_size=1)
    assert "floating" in str(info.value) and "integer" in str(info.value)


def test_building_a_dataset_copies_no_array(arrays):
    (img, txt, num), y = arrays
    ds = MultimodalDataset((img, txt, num), y, batch_size=4)
    for field, original in zip(ds.input_structure.fields, (img, txt, num), strict=True):
        assert field.array.array is original  # the ArraySource holds the user's array


def test_a_memory_mapped_array_is_not_read_at_construction(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.arange(1000 * 16, dtype=np.float64).reshape(1000, 16))
    mapped = np.load(path, mmap_mode="r")
    ds = MultimodalDataset(mapped, batch_size=10)
    assert ds.input_structure.fields[0].array.array is mapped
    assert ds[0][0].dtype == FLOATX


@pytest.mark.parametrize("n", [7, 8, 10])
@pytest.mark.parametrize("drop", [False, True])
def test_every_batch_honours_the_element_spec(arrays, n, drop):
    (img, txt, num), y = arrays
    ds = MultimodalDataset(
        {"image": img[:n], "text": txt[:n], "numeric": num[:n]},
        y[:n],
        np.ones(n),
        batch_size=4,
        drop_remainder=drop,
    )
    spec = ds.element_spec
    for i in range(len(ds)):
        batch = ds[i]
        assert keras.tree.assert_same_structure(batch, spec) is None
        for array, s in zip(flat(batch), flat(spec), strict=True):
            assert isinstance(s, ArraySpec)
            assert array.dtype == s.dtype
            assert array.shape[1:] == s.shape[1:]
            assert array.shape[0] <= 4


def test_element_spec_names_and_shapes(arrays):
    (img, txt, num), y = arrays
    ds = MultimodalDataset({"image": img, "text": txt, "numeric": num}, y, batch_size=4)
    x_spec, y_spec = ds.element_spec
    assert x_spec["image"] == ArraySpec((None, 4, 4, 3), FLOATX, "inputs['image']")
    assert x_spec["text"] == ArraySpec((None, 6), "int32", "inputs['text']")
    assert y_spec == ArraySpec((None,), "int32", "targets")


@pytest.mark.backend
@pytest.mark.parametrize("make", ["ml_dtypes", "backend"])
def test_bfloat16_arrays_are_floating_and_fed_as_floatx(make, backend):
    import ml_dtypes  # installed with Keras

    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    data = values.astype(ml_dtypes.bfloat16)
    if make == "backend":
        data = keras.ops.cast(keras.ops.convert_to_tensor(values), "bfloat16")
        if backend == "torch":
            data = data.float()  # torch tensors have no bfloat16 numpy view
    ds = MultimodalDataset(data, batch_size=6, shuffle=False)
    (x,) = ds[0]
    assert x.dtype == FLOATX and ds.element_spec[0].dtype == FLOATX
    np.testing.assert_array_equal(x, values)


@pytest.mark.parametrize("role", ["inputs", "targets", "sample_weights"])
def test_a_float64_value_beyond_floatx_is_an_error_naming_the_input_and_sample(role):
    values = {r: np.ones((6, 1)) for r in ("inputs", "targets")}
    values["sample_weights"] = np.ones(6)
    values[role][4] = 1e39  # finite in float64, inf in float32
    ds = MultimodalDataset(
        values["inputs"], values["targets"], values["sample_weights"], batch_size=6, shuffle=False
    )
    with pytest.raises(ValueError, match=rf"{role}: sample 4 holds 1e\+39, which is beyond"):
        ds[0]


def test_with_float16_floatx_a_large_value_names_the_wider_float_fix():
    previous = keras.config.floatx()
    keras.config.set_floatx("float16")
    try:
        ds = MultimodalDataset(np.array([[1.0], [1e6]]), batch_size=2, shuffle=False)
        with pytest.raises(ValueError, match=r"inputs: sample 1 holds 1e\+06.*set_floatx"):
            ds[0]
    finally:
        keras.config.set_floatx(previous)


def test_nan_and_inf_in_float_arrays_are_the_users_values_and_pass_unchanged():
    data = np.array([[np.nan], [np.inf], [-np.inf], [1.0]])
    (x,) = MultimodalDataset(data, batch_size=4, shuffle=False)[0]
    np.testing.assert_array_equal(x, data.astype(FLOATX))


def test_a_ragged_list_is_named_with_the_fix():
    with pytest.raises(ValueError, match=r"inputs\[1\] is a list whose samples have different"):
        MultimodalDataset((np.zeros((2, 3)), [[1, 2], [3]]), batch_size=1)


def test_pandas_frames_and_series_are_arrays():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4, 5, 6]})
    ds = MultimodalDataset({"x": frame}, pd.Series([0, 1, 0], dtype="Int64"), shuffle=False)
    x, y = ds[0]
    np.testing.assert_array_equal(x["x"], [[1, 4], [2, 5], [3, 6]])
    assert y.dtype == "int32" and y.tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([1, None, 3], dtype="Int64"),
        pd.Series([True, None, False], dtype="boolean"),
        pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": pd.array([1, None, 2], dtype="Int64")}),
    ],
)
def test_missing_values_of_nullable_pandas_dtypes_are_named_not_fed_as_nan(values):
    with pytest.raises(
        ValueError, match=r"inputs.* has missing values \(<NA>\), the first at sample 1"
    ):
        MultimodalDataset(values, batch_size=3)


@pytest.mark.backend
def test_a_ragged_tensor_is_named_as_ragged_not_as_a_0d_array(backend):
    if backend == "tensorflow":
        import tensorflow as tf

        ragged = tf.ragged.constant([[1, 2], [3]])
    else:  # the same class name, without importing TensorFlow next to another backend
        ragged = type("RaggedTensor", (), {"__module__": "tensorflow.python.ops.ragged"})()
    with pytest.raises(TypeError, match=r"inputs is a tf\.RaggedTensor.*to_tensor"):
        MultimodalDataset(ragged)
