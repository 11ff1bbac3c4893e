"""`ds.check(model)`: one ValueError that lists every mismatch and how to fix it."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from multimodal_dataset import MultimodalDataset, models, synthetic

pytestmark = pytest.mark.keras


@pytest.fixture(scope="module")
def model():
    return models.build_reference_model()


@pytest.fixture(scope="module")
def data():
    return synthetic.make_multimodal(64, seed=1)


@pytest.mark.backend
def test_a_matching_tuple_or_dict_dataset_passes(model, data):
    (img, txt, num), y = data
    MultimodalDataset((img, txt, num), y).check(model)
    MultimodalDataset({"numeric": num, "image": img, "text": txt}, y).check(model)


MISTAKES = {
    "inputs-as-separate-arguments": (
        lambda img, txt, num, y: MultimodalDataset(img, txt, num[:, 0]),
        [
            "the model has 3 inputs (image, text, numeric) but the dataset yields 1",
            "reads the second argument as targets and the third as sample_weights",
            "MultimodalDataset((x1, x2, x3), targets=y)",
        ],
    ),
    "inputs-in-the-wrong-order": (
        lambda img, txt, num, y: MultimodalDataset((txt, img, num), y),
        [
            "wrong order",
            "Pass (inputs[1], inputs[0], inputs[2])",
            "{'image': inputs[1], 'text': inputs[0], 'numeric': inputs[2]}",
        ],
    ),
    "float-text-into-the-embedding": (
        lambda img, txt, num, y: MultimodalDataset((img, txt.astype("float64"), num), y),
        ["inputs[1] holds floating values", "Embedding layer 'embedding'", "astype('int32')"],
    ),
    "dict-key-matching-no-input": (
        lambda img, txt, num, y: MultimodalDataset({"image": img, "txt": txt, "numeric": num}, y),
        [
            "inputs['txt'] matches no keras.Input name",
            "Did you mean 'text'?",
            "model input 'text' (20,) int32 has no entry in the inputs dict",
        ],
    ),
    "several-mistakes-at-once": (
        lambda img, txt, num, y: MultimodalDataset(
            {"image": img[:, :16], "text": txt, "numbers": num}, y
        ),
        [
            "(3 problems)",
            "inputs['image'] has per-sample shape (16, 32, 3)",
            "expects (32, 32, 3)",
            "inputs['numbers'] matches no keras.Input name",
            "Did you mean 'numeric'?",
        ],
    ),
}


@pytest.mark.backend  # the module's model: built by whichever test of a worker comes first
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_classic_mistake_gets_a_message_that_says_what_to_change(model, data, mistake):
    make, fragments = MISTAKES[mistake]
    (img, txt, num), y = data
    with pytest.raises(ValueError) as info:
        make(img, txt, num, y).check(model)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert "The model's inputs, in order: 'image' (32, 32, 3) float32" in message


@pytest.mark.backend
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


@pytest.mark.backend
def test_float_data_for_an_integer_input_is_caught(data):
    (_, txt, _), y = data
    codes = keras.Input((txt.shape[1],), dtype="int32", name="codes")
    model = keras.Model(codes, keras.layers.Dense(2)(keras.layers.Identity()(codes)))
    with pytest.raises(ValueError, match=r"inputs holds floating values.*'codes' is int32"):
        MultimodalDataset(txt.astype("float64"), y).check(model)


@pytest.mark.backend
def test_keras_rank_adjustment_of_a_trailing_unit_dimension_is_accepted(data):
    (_, _, num), y = data
    inp = keras.Input((5, 1), name="numeric")
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(inp)))
    MultimodalDataset(num, y).check(model)
    MultimodalDataset(num[:, :, None], y).check(model)


@pytest.mark.backend  # the module's model, as above
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


@pytest.mark.backend
def test_a_checked_dataset_really_fits(model, data):
    (img, txt, num), y = data
    ds = MultimodalDataset({"image": img, "text": txt, "numeric": num}, y, batch_size=16)
    ds.check(model)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.backend
def test_a_bucketed_text_input_fits_a_none_length_input_and_not_a_fixed_one():
    from multimodal_dataset import TextTokens

    tokens = TextTokens(["a b c", "a b c d e f g", "a"] * 4, buckets=(4, 8))
    ds = MultimodalDataset(tokens, np.zeros(12, "float32"), batch_size=4)

    def model(shape):
        ids = keras.Input(shape, dtype="int32", name="caption")
        x = keras.layers.Embedding(10, 4, mask_zero=True)(ids)
        return keras.Model(ids, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x)))

    ds.check(model((None,)))
    with pytest.raises(
        ValueError,
        match=r"padded to a different length in each batch.*"
        r"keras\.Input\(\(None,\), dtype='int32', name='caption'\).*length=8",
    ):
        ds.check(model((8,)))
    fixed = MultimodalDataset(TextTokens(["a b"] * 4, length=8), np.zeros(4), batch_size=2)
    fixed.check(model((None,)))  # a fixed length fits an input of any length


def fits(ds, model):
    """Whether fit accepts ``ds`` for ``model`` (one step)."""
    try:
        model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    except (ValueError, TypeError, KeyError, RuntimeError):  # Keras 3.8: RuntimeError
        return False
    return True


def dict_model():
    """Inputs declared in an order other than sorted by name: model.inputs sorts them."""
    zeta, alpha = keras.Input((1,), name="zeta"), keras.Input((4,), name="alpha")
    joined = keras.layers.Concatenate()([keras.layers.Dense(2)(zeta), keras.layers.Dense(2)(alpha)])
    model = keras.Model({"zeta": zeta, "alpha": alpha}, keras.layers.Dense(1)(joined))
    model.compile("sgd", "mse")
    return model


def nested_model():
    """[img1, img2, {three texts}]: a structure Keras flattens in model.inputs."""
    first, second = keras.Input((2,), name="img1"), keras.Input((2,), name="img2")
    texts = {k: keras.Input((3,), name=k) for k in ("t1", "t2", "t3")}
    joined = keras.layers.Concatenate()([first, second, *texts.values()])
    model = keras.Model([first, second, texts], keras.layers.Dense(1)(joined))
    model.compile("sgd", "mse")
    return model


def ones(*shape):
    return np.ones((8, *shape), "float32")


Y = np.zeros(8, "float32")
CASES = {
    "dict-model-dict-data": (dict_model, lambda: {"zeta": ones(1), "alpha": ones(4)}),
    "dict-model-shapes-swapped": (dict_model, lambda: {"zeta": ones(4), "alpha": ones(1)}),
    "nested-model-flat-tuple": (
        nested_model,
        lambda: (ones(2), ones(2), ones(3), ones(3), ones(3)),
    ),
    "nested-model-dict-data": (
        nested_model,
        lambda: {"img1": ones(2), "img2": ones(2), "t1": ones(3), "t2": ones(3), "t3": ones(3)},
    ),
}


@pytest.mark.backend
@pytest.mark.filterwarnings("ignore:The structure of `inputs`")
@pytest.mark.parametrize("case", CASES)
def test_check_agrees_with_what_fit_accepts(case):
    make_model, make_inputs = CASES[case]
    model = make_model()
    ds = MultimodalDataset(make_inputs(), Y, batch_size=4)
    try:
        ds.check(model)
        checked = True
    except ValueError as error:
        checked = False
        message = str(error)
    assert checked == fits(ds, make_model())
    if case == "dict-model-shapes-swapped":
        assert "'zeta' expects (1,)" in message and "'alpha' expects (4,)" in message
    if case == "nested-model-dict-data":
        assert "nested structure" in message and "keras.Model({'a': a" in message
