"""`ds.check(model)`: one ValueError that lists every mismatch and how to fix it."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from multimodal_dataset import MultimodalDataset, models, synthetic


@pytest.fixture(scope="module")
def model():
    return models.build_reference_model()


@pytest.fixture(scope="module")
def data():
    return synthetic.make_multimodal(64, seed=1)


def test_a_matching_tuple_or_dict_dataset_passes(model, data):
    (img, txt, num), y = data
    MultimodalDataset((img, txt, num), y).check(model)
    MultimodalDataset({"numeric": num, "image": img, "text": txt}, y).check(model)


def test_inputs_passed_as_separate_arguments_are_explained(model, data):
    (img, txt, num), _ = data
    ds = MultimodalDataset(img, txt, num[:, 0])
    with pytest.raises(ValueError) as info:
        ds.check(model)
    message = str(info.value)
    assert "the model has 3 inputs (image, text, numeric) but the dataset yields 1" in message
    assert "reads the second argument as targets and the third as sample_weights" in message
    assert "MultimodalDataset((x1, x2, x3), targets=y)" in message


def test_inputs_in_the_wrong_order_get_the_right_order(model, data):
    (img, txt, num), y = data
    with pytest.raises(ValueError) as info:
        MultimodalDataset((txt, img, num), y).check(model)
    message = str(info.value)
    assert "wrong order" in message
    assert "Pass (inputs[1], inputs[0], inputs[2])" in message
    assert "{'image': inputs[1], 'text': inputs[0], 'numeric': inputs[2]}" in message


def test_float_text_fed_to_an_embedding_is_caught(data):
    (img, txt, _num), y = data
    text = keras.Input((txt.shape[1],), name="text")  # float32 by default
    image = keras.Input(img.shape[1:], name="image")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(1000, 4, name="emb")(text))
    z = keras.layers.Concatenate()([x, keras.layers.Flatten()(image)])
    model = keras.Model([image, text], keras.layers.Dense(2)(z))
    with pytest.raises(ValueError) as info:
        MultimodalDataset((img, txt.astype("float32")), y).check(model)
    message = str(info.value)
    assert "inputs[1] holds floating values (float32)" in message
    assert "Embedding layer 'emb'" in message and "astype('int32')" in message


def test_float_data_for_an_integer_input_is_caught(data):
    (_, txt, _), y = data
    codes = keras.Input((txt.shape[1],), dtype="int32", name="codes")
    model = keras.Model(codes, keras.layers.Dense(2)(keras.layers.Identity()(codes)))
    with pytest.raises(ValueError, match=r"inputs holds floating values.*'codes' is int32"):
        MultimodalDataset(txt.astype("float64"), y).check(model)


def test_float_text_into_the_reference_embedding_is_caught(model, data):
    (img, txt, num), y = data
    with pytest.raises(ValueError) as info:
        MultimodalDataset((img, txt.astype("float64"), num), y).check(model)
    message = str(info.value)
    assert "inputs[1] holds floating values" in message
    assert "Embedding layer 'embedding'" in message
    assert "declare keras.Input" not in message  # the reference input is already int32


def test_a_dict_key_that_matches_no_input_suggests_the_closest_name(model, data):
    (img, txt, num), y = data
    with pytest.raises(ValueError) as info:
        MultimodalDataset({"image": img, "txt": txt, "numeric": num}, y).check(model)
    message = str(info.value)
    assert "inputs['txt'] matches no keras.Input name" in message
    assert "Did you mean 'text'?" in message
    assert "model input 'text' (20,) int32 has no entry in the inputs dict" in message


def test_every_mismatch_is_listed_in_one_error(model, data):
    (img, txt, num), y = data
    ds = MultimodalDataset({"image": img[:, :16], "text": txt, "numbers": num}, y)
    with pytest.raises(ValueError, match=r"\(3 problems\)") as info:
        ds.check(model)
    message = str(info.value)
    assert "inputs['image'] has per-sample shape (16, 32, 3)" in message
    assert "expects (32, 32, 3)" in message
    assert "inputs['numbers'] matches no keras.Input name" in message
    assert "Did you mean 'numeric'?" in message


def test_keras_rank_adjustment_of_a_trailing_unit_dimension_is_accepted(data):
    (_, _, num), y = data
    inp = keras.Input((5, 1), name="numeric")
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(inp)))
    MultimodalDataset(num, y).check(model)
    MultimodalDataset(num[:, :, None], y).check(model)


def test_the_number_of_targets_must_match_the_outputs(model, data):
    (img, txt, num), y = data
    with pytest.raises(ValueError, match=r"the model has 1 output.*but the dataset has 2 target"):
        MultimodalDataset((img, txt, num), (y, y)).check(model)


def test_a_model_without_known_inputs_gets_a_clear_error(data):
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    (img, _, _), y = data
    with pytest.raises(ValueError, match="has no known inputs"):
        MultimodalDataset(img, y).check(Subclassed())


def test_a_checked_dataset_really_fits(model, data):
    (img, txt, num), y = data
    ds = MultimodalDataset({"image": img, "text": txt, "numeric": num}, y, batch_size=16)
    ds.check(model)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
