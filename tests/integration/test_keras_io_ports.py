"""Two keras.io examples ported to `from_table`, on synthetic stand-ins of the same shapes,
trained on every backend: multimodal entailment (two images and two texts per row, a
shared vocabulary, a stratified split) and structured-data classification (one named
``keras.Input`` per feature, integer and string categories). Each checks the model, saves
the preprocessing, and predicts new rows in row order at inference."""

from __future__ import annotations

import io
import warnings

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from multimodal_dataset import ReplacedSamplesWarning, TablePreprocessing, from_table

pytestmark = pytest.mark.backend
LABELS = ["contradictory", "implies", "no_entailment"]
WORDS = ["the", "a", "cat", "dog", "sits", "runs", "on", "under", "mat", "grass", "red", "blue"]


def png(rng):
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def entailment_table(n, seed=0):
    """keras.io's multimodal entailment columns: image_1, image_2, text_1, text_2, label."""
    rng = np.random.default_rng(seed)

    def text():
        return " ".join(rng.choice(WORDS, rng.integers(3, 8)))

    return pd.DataFrame(
        {
            "image_1": [png(rng) for _ in range(n)],
            "image_2": [png(rng) for _ in range(n)],
            "text_1": [text() for _ in range(n)],
            "text_2": [text() for _ in range(n)],
            "label": rng.choice(LABELS, n, p=[0.2, 0.3, 0.5]),
        }
    )


def entailment_model(vocab_size):
    images = {k: keras.Input((16, 16, 3), name=k) for k in ("image_1", "image_2")}
    texts = {k: keras.Input((8,), dtype="int32", name=k) for k in ("text_1", "text_2")}
    vision = keras.Sequential(
        [keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D()]
    )
    embed = keras.layers.Embedding(vocab_size, 8)
    pool = keras.layers.GlobalAveragePooling1D()
    features = [vision(v) for v in images.values()] + [pool(embed(t)) for t in texts.values()]
    output = keras.layers.Dense(3, activation="softmax", name="label")(
        keras.layers.Concatenate()(features)
    )
    model = keras.Model({**images, **texts}, output)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def predictions_in_row_order(model, preprocessing, new, **kwargs):
    """Predictions for ``new``, checked to follow its rows: the same rows shuffled give the
    same predictions shuffled."""
    predicted = model.predict(preprocessing.dataset(new, batch_size=8, **kwargs), verbose=0)
    order = np.random.default_rng(1).permutation(len(new))
    shuffled = preprocessing.dataset(new.iloc[order].reset_index(drop=True), batch_size=8)
    np.testing.assert_allclose(
        model.predict(shuffled, verbose=0), predicted[order], rtol=1e-4, atol=1e-5
    )
    return predicted


def test_the_multimodal_entailment_port_trains_and_predicts_new_pairs_in_row_order(tmp_path):
    table = entailment_table(60)
    train, val = from_table(
        table,
        image=["image_1", "image_2"],
        text=["text_1", "text_2"],
        target="label",
        inputs="dict",
        shared_vocabulary=True,
        stratify=True,
        image_size=(16, 16),
        text_length=8,
        batch_size=8,
        seed=0,
    )
    pre = train.preprocessing
    assert pre.classes == LABELS
    val_labels = np.concatenate([val[i][1] for i in range(len(val))])
    per_class = table["label"].value_counts().reindex(LABELS).to_numpy()
    assert len(val_labels) == 12  # int(0.2 * 60), each class within a row of its 20%
    assert (np.abs(np.bincount(val_labels, minlength=3) - 0.2 * per_class) < 1).all()
    model = entailment_model(len(pre.vocabulary))
    train.check(model)
    history = model.fit(train, validation_data=val, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    pre.save(tmp_path / "preprocessing.json")
    loaded = TablePreprocessing.load(tmp_path / "preprocessing.json")
    new = entailment_table(10, seed=5).drop(columns=["label"])
    predicted = predictions_in_row_order(model, loaded, new)
    assert predicted.shape == (10, 3)


def heart_table(n, seed=0):
    """keras.io's structured-data (heart disease) columns: numbers, integer categories
    and the string category thal."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(29, 78, n),
            "sex": rng.integers(0, 2, n),
            "cp": rng.integers(0, 4, n),
            "trestbps": rng.normal(130, 17, n),
            "chol": rng.normal(246, 50, n),
            "fbs": rng.integers(0, 2, n),
            "thalach": rng.normal(150, 22, n),
            "oldpeak": rng.exponential(1.0, n),
            "thal": rng.choice(["normal", "fixed", "reversible"], n),
            "target": rng.integers(0, 2, n),
        }
    )


NUMERIC = ["age", "trestbps", "chol", "thalach", "oldpeak"]
CATEGORICAL = ["sex", "cp", "fbs", "thal"]


def heart_model(categories):
    numeric = {k: keras.Input((1,), name=k) for k in NUMERIC}
    categorical = {k: keras.Input((1,), dtype="int32", name=k) for k in CATEGORICAL}
    encoded = list(numeric.values()) + [
        keras.layers.Flatten()(keras.layers.Embedding(categories[k].num_ids, 2)(v))
        for k, v in categorical.items()
    ]
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()(encoded))
    output = keras.layers.Dense(1, activation="sigmoid", name="target")(hidden)
    model = keras.Model({**numeric, **categorical}, output)
    model.compile("adam", "binary_crossentropy")
    return model


def test_the_structured_data_port_trains_and_reads_unseen_categories_at_inference(tmp_path):
    train, val = from_table(
        heart_table(80),
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        target="target",
        inputs="dict",
        batch_size=16,
        seed=0,
    )
    pre = train.preprocessing
    assert set(pre.categories["thal"].categories) == {"normal", "fixed", "reversible"}
    model = heart_model(pre.categories)
    train.check(model)
    model.fit(train, validation_data=val, epochs=1, verbose=0)
    pre.save(tmp_path / "preprocessing.json")
    loaded = TablePreprocessing.load(tmp_path / "preprocessing.json")
    new = heart_table(12, seed=3).drop(columns=["target"])
    new["thal"] = new["thal"].astype(object)
    new.loc[0, "thal"] = "1"  # a value the training rows never had
    new.loc[1, "thal"] = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predicted = predictions_in_row_order(model, loaded, new)
    assert predicted.shape == (12, 1) and np.isfinite(predicted).all()
    reports = [str(w.message) for w in caught if issubclass(w.category, ReplacedSamplesWarning)]
    assert reports and all("column 'thal'" in r for r in reports)
    x = loaded.dataset(new, batch_size=12)[0][0]
    assert x["thal"][:2, 0].tolist() == [0, 0] and (x["thal"][2:, 0] > 0).all()


def test_check_matches_several_targets_to_the_model_outputs_by_name():
    table = heart_table(40).assign(severity=np.linspace(0, 1, 40))
    train, _ = from_table(
        table, numeric=NUMERIC, target=["target", "severity"], inputs="dict", batch_size=8
    )
    inputs = {k: keras.Input((1,), name=k) for k in NUMERIC}
    hidden = keras.layers.Dense(4)(keras.layers.Concatenate()(list(inputs.values())))
    outputs = {
        "target": keras.layers.Dense(1, activation="sigmoid", name="target")(hidden),
        "severity": keras.layers.Dense(1, name="severity")(hidden),
    }
    model = keras.Model(inputs, outputs)
    train.check(model)
    model.compile("adam", {"target": "binary_crossentropy", "severity": "mse"})
    model.fit(train, epochs=1, verbose=0)
    wrong = keras.Model(inputs, {"target": outputs["target"], "grade": outputs["severity"]})
    with pytest.raises(ValueError, match="severity"):
        train.check(wrong)


def test_a_multi_label_model_trains_on_a_hugging_face_sequence_of_class_labels():
    datasets = pytest.importorskip("datasets")
    topics = ["art", "news", "sport"]
    rng = np.random.default_rng(0)
    features = datasets.Features(
        {
            "length": datasets.Value("float32"),
            "source": datasets.Value("string"),
            "topics": datasets.Sequence(datasets.ClassLabel(names=topics)),
        }
    )
    hf = datasets.Dataset.from_dict(
        {
            "length": rng.normal(100, 30, 48).tolist(),
            "source": rng.choice(["wire", "blog"], 48).tolist(),
            "topics": [
                sorted(rng.choice(3, rng.integers(0, 3), replace=False).tolist()) for _ in range(48)
            ],
        },
        features=features,
    )
    train, val = from_table(
        hf, numeric="length", categorical="source", target="topics", batch_size=8
    )
    assert train.preprocessing.classes == topics
    length, source = keras.Input((1,), name="length"), keras.Input((1,), dtype="int32")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(3, 2)(source))
    output = keras.layers.Dense(3, activation="sigmoid")(
        keras.layers.Concatenate()([length, embedded])
    )
    model = keras.Model([length, source], output)
    model.compile("adam", "binary_crossentropy")
    train.check(model)
    model.fit(train, validation_data=val, epochs=1, verbose=0)
    assert model.predict(val, verbose=0).shape == (9, 3)
