"""Tables as users have them: several columns of each kind, categorical columns, dict
inputs, several and multi-label targets, stratified splits, the image value range, and
every bad input named."""

from __future__ import annotations

import datetime
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import id_png
from multimodal_dataset import (
    CategoryOverflowWarning,
    ImageBytes,
    ImageFiles,
    ReplacedSamplesWarning,
    TablePreprocessing,
    from_table,
)
from multimodal_dataset.sources.protocol import GatherContext
from multimodal_dataset.tables.factory import split_rows

pytestmark = pytest.mark.keras
DATA = Path(__file__).parent.parent / "data"


def pets(n=40):
    """A table with two texts, two numbers, an integer and a string category, a class
    target and a float target."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "title": [f"title {i % 7}" for i in range(n)],
            "body": [f"body words {i % 5} and {i % 3}" for i in range(n)],
            "age": rng.normal(5, 2, n),
            "weight": rng.normal(20, 5, n),
            "cp": [i % 4 for i in range(n)],
            "thal": [["normal", "fixed", "reversible", "normal"][i % 4] for i in range(n)],
            "label": [["cat", "dog"][i % 2] for i in range(n)],
            "score": np.linspace(0, 1, n),
        }
    )


#: Two columns of each input kind of `pets`.
EVERY_KIND = {
    "text": ["title", "body"],
    "numeric": ["age", "weight"],
    "categorical": ["cp", "thal"],
}


def assert_same_dict_batches(a, b):
    """Two datasets of dict inputs and dict targets give the same batches."""
    assert len(a) == len(b)
    for i in range(len(a)):
        (x1, y1), (x2, y2) = a[i], b[i]
        assert sorted(x1) == sorted(x2) and sorted(y1) == sorted(y2)
        for key in x1:
            np.testing.assert_array_equal(x1[key], x2[key], err_msg=f"batch {i}, {key}")
        for key in y1:
            np.testing.assert_array_equal(y1[key], y2[key], err_msg=f"batch {i}, {key}")


def test_several_columns_of_each_kind_come_in_order_with_one_grouped_numeric_input():
    train, _ = from_table(
        pets(),
        **EVERY_KIND,
        target="label",
        text_length=6,
        validation_split=0,
        shuffle=False,
        batch_size=8,
    )
    x, y = train[0]
    assert isinstance(x, tuple) and len(x) == 5
    title, body, numbers, cp, thal = x
    assert title.shape == body.shape == (8, 6) and title.dtype == np.int32
    assert numbers.shape == (8, 2)
    assert cp.shape == thal.shape == (8, 1) and cp.dtype == np.int32
    pre = train.preprocessing
    assert pre.vocabularies["title"] != pre.vocabularies["body"]  # each its own
    assert y.tolist() == [0, 1] * 4


def test_dict_inputs_are_keyed_by_column_with_one_input_per_numeric_column():
    train, val = from_table(
        pets(),
        text=["title", "body"],
        numeric=["age", "weight"],
        categorical=["cp"],
        target=["label", "score"],
        inputs="dict",
        text_length=6,
        batch_size=8,
    )
    x, y = train[0]
    assert sorted(x) == ["age", "body", "cp", "title", "weight"]
    assert x["age"].shape == x["weight"].shape == (8, 1)
    mean, std = train.preprocessing.standardizer.mean, train.preprocessing.standardizer.std
    assert train.preprocessing.standardizer.columns == ("age", "weight")
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    assert sorted(y) == ["label", "score"]
    assert y["label"].dtype == np.int32 and y["score"].dtype == np.float32
    assert sorted(val[0][0]) == sorted(x)


def test_several_targets_are_a_tuple_each_with_its_own_kind():
    train, _ = from_table(
        pets(),
        numeric=["age"],
        target=["label", "cp"],
        target_kind={"cp": "classes"},
        validation_split=0,
        shuffle=False,
        batch_size=4,
    )
    _, (label, cp) = train[0]
    assert label.tolist() == [0, 1, 0, 1] and cp.tolist() == [0, 1, 2, 3]
    pre = train.preprocessing
    assert pre.target_kinds == {"label": "classes", "cp": "classes"}
    assert pre.target_classes == {"label": ["cat", "dog"], "cp": ["0", "1", "2", "3"]}


def test_a_shared_vocabulary_is_fitted_on_every_text_column_and_used_by_each():
    frame = pd.DataFrame({"a": ["red cat"] * 4 + ["x"] * 4, "b": ["blue dog"] * 8, "y": [0, 1] * 4})
    train, _ = from_table(
        frame,
        text=["a", "b"],
        target="y",
        text_length=3,
        shared_vocabulary=True,
        validation_split=0,
        shuffle=False,
        batch_size=8,
    )
    pre = train.preprocessing
    assert pre.vocabularies["a"] is pre.vocabularies["b"] is pre.vocabulary
    assert set(pre.vocabulary.tokens[2:]) == {"red", "cat", "x", "blue", "dog"}
    (a, b), _ = train[0]
    assert pre.vocabulary.tokens[a[0, 0]] == "red" and pre.vocabulary.tokens[b[0, 0]] == "blue"


# ----------------------------------------------------------------------------- categories


def test_categories_are_fitted_on_training_rows_most_frequent_first_zero_for_the_rest():
    frame = pd.DataFrame({"c": ["b", "a", "b", None, "c", "b"], "y": [0, 1, 0, 1, 0, 1]})
    rows = np.array([0, 1, 2, 3, 5])  # "c" (row 4) is validation only
    pre = TablePreprocessing(categorical=("c",), targets=("y",))
    from multimodal_dataset.tables.reading import read_table

    table = read_table(frame)
    column = pre.inputs(table, rows)
    assert pre.categories["c"].categories == ("b", "a")
    assert column.values[:, 0].tolist() == [1, 2, 1, 0, 1]
    val = pre.inputs(table, np.array([4]))
    assert val.values[:, 0].tolist() == [0]
    assert pre.categories["c"].num_ids == 3


def test_unseen_and_missing_categories_at_inference_are_id_0_and_reported_never_raised(
    tmp_path,
):
    train, _ = from_table(
        pets(),
        numeric=["age"],
        categorical=["thal"],
        target="label",
        validation_split=0,
        on_error="raise",
        batch_size=8,
    )
    path = tmp_path / "pre.json"
    train.preprocessing.save(path)
    loaded = TablePreprocessing.load(path)
    new = pets(4).drop(columns=["label"])
    new.loc[1, "thal"] = "unknown"
    new.loc[2, "thal"] = None
    ds = loaded.dataset(new, batch_size=4, on_error="raise")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds.on_epoch_begin()
        ((_, thal),) = ds[0]
        ds.on_epoch_end()
    lookup = loaded.categories["thal"]
    assert thal[:, 0].tolist() == [
        lookup.categories.index("normal") + 1,
        0,
        0,
        lookup.categories.index("normal") + 1,
    ]
    reports = [str(w.message) for w in caught if issubclass(w.category, ReplacedSamplesWarning)]
    assert len(reports) == 1 and "2 samples" in reports[0]
    assert "column 'thal' holds a category not fitted on the training rows" in reports[0]
    assert "column 'thal' has no value" in reports[0]
    assert sorted(r.sample for r in ds.replacements) == [1, 2]


def test_more_categories_than_max_categories_keeps_the_most_frequent_and_warns():
    frame = pd.DataFrame({"c": list("aaabbc") * 2, "y": [0, 1] * 6})
    with pytest.warns(CategoryOverflowWarning) as caught:
        train, _ = from_table(
            frame,
            categorical="c",
            target="y",
            max_categories=3,
            validation_split=0,
            shuffle=False,
            batch_size=12,
        )
    message = str(caught[0].message)
    assert "categorical='c' has 3 categories" in message and "max_categories=3" in message
    assert "the 1 least frequent ('c'; 2 training rows, 16.7%) get id 0" in message
    assert train.preprocessing.categories["c"].categories == ("a", "b")
    x, _ = train[0]
    assert x[:, 0].tolist() == [1, 1, 1, 2, 2, 0] * 2


@pytest.mark.parametrize("bad", [1, 0, 2.5, "10"])
def test_max_categories_below_two_or_not_an_integer_is_refused(bad):
    with pytest.raises(ValueError, match=r"max_categories must be an integer of at least 2"):
        from_table(pets(), categorical="cp", target="label", max_categories=bad)


# ---------------------------------------------------------------------------- multi-label


def test_a_list_column_target_is_multi_hot_with_its_classes_saved(tmp_path):
    frame = pd.DataFrame(
        {"x": np.arange(6.0), "tags": [["a", "b"], [], ["c"], ["b"], ["a", "c"], ["b", "c"]]}
    )
    train, _ = from_table(
        frame, numeric="x", target="tags", validation_split=0, shuffle=False, batch_size=6
    )
    pre = train.preprocessing
    assert pre.target_kind == "multi_label" and pre.classes == ["a", "b", "c"]
    _, y = train[0]
    assert y.dtype == np.float32
    assert y.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 1], [0, 1, 1]]
    pre.save(tmp_path / "p.json")
    assert TablePreprocessing.load(tmp_path / "p.json").target_classes == {"tags": ["a", "b", "c"]}


def test_a_list_of_ids_is_multi_hot_by_position_and_never_turned_into_strings():
    frame = pd.DataFrame({"x": np.arange(3.0), "tags": [[0, 3], [1], [3]]})
    train, _ = from_table(frame, numeric="x", target="tags", validation_split=0, shuffle=False)
    assert train.preprocessing.classes == [0, 1, 2, 3]
    assert train[0][1].tolist() == [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1]]
    with pytest.raises(ValueError, match=r"holds a list per row .* never turned into a string"):
        from_table(frame, numeric="x", target="tags", target_kind="classes")


def test_a_hugging_face_sequence_of_class_labels_keeps_its_names():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "x": datasets.Value("float32"),
            "topics": datasets.Sequence(datasets.ClassLabel(names=["art", "news", "sport"])),
            "label": datasets.ClassLabel(names=["neg", "pos"]),
        }
    )
    hf = datasets.Dataset.from_dict(
        {"x": [0.0, 1.0, 2.0, 3.0], "topics": [[0, 2], [1], [], [2]], "label": [1, 0, 1, 1]},
        features=features,
    )
    train, _ = from_table(
        hf, numeric="x", target=["topics", "label"], validation_split=0, shuffle=False
    )
    pre = train.preprocessing
    assert pre.target_classes == {"topics": ["art", "news", "sport"], "label": ["neg", "pos"]}
    assert pre.target_kinds == {"topics": "multi_label", "label": "int"}
    _, (topics, label) = train[0]
    assert topics.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert label.tolist() == [1, 0, 1, 1]


def test_a_hugging_face_class_label_target_missing_a_label_is_named():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"x": datasets.Value("float32"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    hf = datasets.Dataset.from_dict({"x": [0.0, 1.0], "label": [1, -1]}, features=features)
    with pytest.raises(ValueError, match=r"table row 1, column 'label' has no label \(-1"):
        from_table(hf, numeric="x", target="label")


# ------------------------------------------------------------------------------ the split


def test_a_stratified_split_keeps_each_class_share_and_is_a_function_of_the_seed():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    train_rows, val_rows = split_rows(100, 0.2, seed=3, strata=labels)
    assert np.bincount(labels[val_rows]).tolist() == [12, 6, 2]
    assert len(train_rows) + len(val_rows) == 100
    assert not set(train_rows) & set(val_rows)
    again = split_rows(100, 0.2, seed=3, strata=labels)[1]
    other = split_rows(100, 0.2, seed=4, strata=labels)[1]
    assert val_rows.tolist() == again.tolist() and val_rows.tolist() != other.tolist()


def test_a_stratified_split_gives_the_remainder_to_the_largest_remainders():
    labels = np.array([0] * 7 + [1] * 7 + [2] * 6)
    _, val_rows = split_rows(20, 0.25, seed=0, strata=labels)  # exact: 1.75, 1.75, 1.5
    assert np.bincount(labels[val_rows], minlength=3).tolist() == [2, 2, 1]


def test_from_table_stratifies_by_the_target():
    frame = pd.DataFrame({"x": np.arange(50.0), "y": ["a"] * 40 + ["b"] * 10})
    _, val = from_table(frame, numeric="x", target="y", stratify=True, validation_split=0.2)
    ys = np.concatenate([val[i][1] for i in range(len(val))])
    assert np.bincount(ys).tolist() == [8, 2]
    with pytest.raises(ValueError, match=r"stratify needs a target of classes.*'float'"):
        from_table(frame.assign(z=frame.x / 7), numeric="x", target="z", stratify=True)
    with pytest.raises(ValueError, match=r"with validation= .* there is no split to stratify"):
        from_table(frame, numeric="x", target="y", stratify=True, validation=frame)


# ---------------------------------------------------------------------------- value range


@pytest.mark.parametrize("stored", ["bytes", "files"])
@pytest.mark.parametrize(
    ("value_range", "low", "high"), [((0, 1), 0, 1), ((0, 255), 0, 255), ((-1, 1), -1, 1)]
)
def test_the_value_range_maps_0_and_255_to_its_ends(value_range, low, high, stored, tmp_path):
    images = [id_png(0), id_png(255), id_png(51)]
    if stored == "bytes":
        source = ImageBytes(images, (2, 2), value_range=value_range, dtype="float32")
    else:
        for i, data in enumerate(images):
            (tmp_path / f"{i}.png").write_bytes(data)
        paths = [f"{i}.png" for i in range(3)]
        source = ImageFiles(paths, (2, 2), root=tmp_path, value_range=value_range, dtype="float32")
    batch = source.gather(np.arange(3), GatherContext())
    assert batch[0].min() == low and batch[1].max() == high
    np.testing.assert_allclose(batch[2], low + (high - low) * 51 / 255, rtol=1e-6)


def test_from_table_passes_the_value_range_to_every_image_column():
    frame = pd.DataFrame({"a": [id_png(255)] * 2, "b": [id_png(0)] * 2, "y": [0, 1]})
    train, _ = from_table(
        frame,
        image=["a", "b"],
        target="y",
        image_size=(2, 2),
        value_range=(-1, 1),
        validation_split=0,
    )
    (a, b), _ = train[0]
    assert a.max() == 1 and b.min() == -1
    assert train.preprocessing.value_range == (-1.0, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"value_range": (1, 0)}, r"value_range must be \(low, high\).*got \(1, 0\)"),
        ({"value_range": "0-255"}, r"value_range must be \(low, high\)"),
        ({"value_range": (-1, 1), "dtype": "uint8"}, r"dtype='uint8' holds the values 0-255"),
    ],
)
def test_a_bad_value_range_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageBytes([id_png(0)], (2, 2), **kwargs)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"numeric": ["age", "wieght"]},
            KeyError,
            r"numeric='wieght': the DataFrame has no column 'wieght'. Did you mean 'weight'\?",
        ),
        (
            {"categorical": ["cp", "thal", "cp"]},
            ValueError,
            r"A column may be given once: 'cp' 2 times in categorical=",
        ),
        (
            {"numeric": ["age"], "categorical": ["age"]},
            ValueError,
            r"'age' as numeric= and as categorical=",
        ),
        ({"numeric": ["age"], "target": ["label", "age"]}, ValueError, r"'age' as numeric= and"),
        ({"inputs": "list", "numeric": "age"}, ValueError, r"inputs must be 'tuple'.*'list'"),
        ({"numeric": ["age", 3]}, TypeError, r"numeric= takes a column name .* got 3 \(int\)"),
        (
            {"numeric": "age", "target_kind": {"lable": "int"}},
            ValueError,
            r"target_kind names \['lable'\], which is not among the targets \['label'\]",
        ),
        (
            {"numeric": "age", "target_kind": "multi_label"},
            ValueError,
            r"target_kind='multi_label' needs a list .* 'label' holds one value per row",
        ),
    ],
)
def test_a_bad_column_list_is_named(kwargs, error, match):
    kwargs.setdefault("target", "label")
    with pytest.raises(error, match=match):
        from_table(pets(), **kwargs)


def test_a_list_valued_numeric_column_is_refused_naming_it():
    frame = pets(4).assign(sizes=[[1, 2], [3], [4, 5], [6]])
    with pytest.raises(ValueError, match=r"numeric='sizes': column 'sizes' .* holds lists"):
        from_table(frame, numeric=["age", "sizes"], target="label", validation_split=0)
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"sizes": pa.array([[1.0], [2.0]]), "label": [0, 1]})
    with pytest.raises(ValueError, match=r"numeric='sizes': column 'sizes' .* holds list<"):
        from_table(table, numeric="sizes", target="label")


@pytest.mark.parametrize(
    "dates",
    [
        pd.to_datetime(["2024-01-01", "2024-01-02", "2024-02-01", "2024-03-01"]),
        [datetime.date(2024, 1, d) for d in range(1, 5)],
        pd.to_timedelta([1, 2, 3, 4], unit="D"),
    ],
)
def test_a_date_or_time_column_given_as_numeric_is_refused_with_the_fix(dates):
    frame = pets(4).assign(when=dates)
    with pytest.raises(ValueError, match=r"numeric='when': .* a date or time.*Convert it"):
        from_table(frame, numeric="when", target="label", validation_split=0)


def test_an_arrow_timestamp_column_given_as_numeric_is_refused():
    pa = pytest.importorskip("pyarrow")
    table = pa.table(
        {"when": pa.array([datetime.datetime(2024, 1, d) for d in (1, 2)]), "label": [0, 1]}
    )
    with pytest.raises(ValueError, match=r"numeric='when': .* holds timestamp\[us\]"):
        from_table(table, numeric="when", target="label")


def test_a_list_valued_categorical_column_is_refused():
    frame = pets(4).assign(tags=[["a"], ["b"], ["a"], []])
    with pytest.raises(ValueError, match=r"categorical='tags': .* not one category per row"):
        from_table(frame, categorical="tags", target="label", validation_split=0)


# ---------------------------------------------------------------------------- saved files


def test_every_new_kind_round_trips_through_save_and_load(tmp_path):
    frame = pets().assign(tags=[["a", "b"][: i % 3] for i in range(40)])
    train, _ = from_table(
        frame,
        **EVERY_KIND,
        target=["label", "score", "tags"],
        inputs="dict",
        shared_vocabulary=True,
        max_categories=4,
        text_length=5,
        batch_size=8,
        validation_split=0,
        shuffle=False,
    )
    pre = train.preprocessing
    pre.save(tmp_path / "p.json")
    loaded = TablePreprocessing.load(tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["version"] == 2
    for name in (
        "texts",
        "numeric",
        "categorical",
        "targets",
        "structure",
        "standardizer",
        "categories",
        "target_kinds",
        "target_classes",
        "max_categories",
        "value_range",
        "shared_vocabulary",
    ):
        assert getattr(loaded, name) == getattr(pre, name), name
    assert loaded.vocabularies["title"] is loaded.vocabularies["body"]
    assert_same_dict_batches(train, loaded.dataset(frame, batch_size=8))


def test_a_version_1_file_still_loads_and_reads_new_rows_as_it_did():
    loaded = TablePreprocessing.load(DATA / "preprocessing" / "version1.json")
    assert loaded.texts == ("caption",) and loaded.targets == ("label",)
    assert loaded.classes == ["cat", "dog"] and loaded.target_kind == "classes"
    frame = pd.DataFrame(
        {
            "caption": ["a red cat", "a dog", "the red dog", "a cat"] * 5,
            "width": np.arange(20.0),
            "label": ["cat", "dog", "dog", "cat"] * 5,
        }
    )
    (tokens, numbers), y = loaded.dataset(frame, batch_size=4)[0]
    # What the version that wrote the file (c0fcdd4) gave for these rows.
    assert tokens.tolist() == [
        [2, 5, 3, 0, 0, 0],
        [2, 4, 0, 0, 0, 0],
        [6, 5, 4, 0, 0, 0],
        [2, 3, 0, 0, 0, 0],
    ]
    np.testing.assert_allclose(
        numbers[:, 0], [-1.647509, -1.474087, -1.300665, -1.127243], rtol=1e-6
    )
    assert y.tolist() == [0, 1, 1, 0]


# --------------------------------------------------------------------- shards and workers


def test_webdataset_shards_take_categorical_members_and_the_value_range(tmp_path):
    from conftest import write_shards
    from multimodal_dataset import from_webdataset

    ids = np.arange(12)
    write_shards(tmp_path, ids, shards=2)
    train, _ = from_webdataset(
        str(tmp_path / "*.tar"),
        image="png",
        categorical=["json.id"],
        target="cls",
        image_size=(2, 2),
        value_range=(0, 255),
        inputs="dict",
        validation_split=0,
        shuffle=False,
        batch_size=12,
    )
    x, y = train[0]
    assert np.round(x["png"][:, 0, 0, 0]).astype(int).tolist() == ids.tolist()
    lookup = train.preprocessing.categories["json.id"]
    assert [lookup.name(i) for i in x["json.id"][:, 0]] == [str(i) for i in ids]
    assert y.tolist() == ids.tolist()


@pytest.mark.parametrize("processes", [False, True])
def test_dict_inputs_categories_and_multi_label_targets_are_the_same_stream_in_workers(processes):
    frame = pets().assign(tags=[["a", "b", "c"][: i % 4] for i in range(40)])
    kwargs = dict(
        **EVERY_KIND,
        target=["label", "tags"],
        inputs="dict",
        text_length=5,
        batch_size=8,
        seed=2,
    )
    alone = from_table(frame, **kwargs)[0]
    workers = from_table(frame, **kwargs, workers=2, use_multiprocessing=processes)[0]
    try:
        for ds in (alone, workers):
            ds.on_epoch_end()  # epoch 1: a shuffled order
        assert_same_dict_batches(alone, workers)
    finally:
        workers.close()


def test_several_image_columns_are_cached_apart_inside_the_cache(tmp_path):
    frame = pd.DataFrame({"a": [id_png(10)] * 2, "../b": [id_png(20)] * 2, "y": [0, 1]})
    kwargs = dict(image=["a", "../b"], target="y", image_size=(2, 2), validation_split=0)
    train, _ = from_table(frame, **kwargs, cache=tmp_path / "cache", shuffle=False)
    train.fill_cache()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["image-..%2Fb", "image-a"]
    again, _ = from_table(frame, **kwargs, cache=tmp_path / "cache", shuffle=False)
    (a, b), _ = again[0]
    assert round(float(a.max()) * 255) == 10 and round(float(b.max()) * 255) == 20
