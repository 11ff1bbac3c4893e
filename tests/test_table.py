"""from_table: CSV, Parquet, DataFrame and pyarrow tables of real files to (train,
validation) datasets, preprocessing fitted on training rows, saved and reloaded, and every
bad cell named by row and column."""

from __future__ import annotations

import csv
import os
import re
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multimodal_dataset import (
    ReplacedSamplesWarning,
    SampleError,
    TablePreprocessing,
    from_table,
    make_example,
)
from multimodal_dataset.example import NUMERIC_COLUMNS
from multimodal_dataset.sources.text import split_words

COLUMNS = {
    "image": "image",
    "text": "caption",
    "numeric": list(NUMERIC_COLUMNS),
    "target": "label",
    "image_size": (16, 16),
    "text_length": 8,
}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("example")
    return make_example(folder, samples=60, seed=1)


def read_rows(manifest):
    with open(manifest, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def write_rows(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def edited(example, row, column, value):
    """A copy of the example's manifest (same folder) with one cell changed."""
    rows = read_rows(example)
    rows[row + 1][rows[0].index(column)] = value
    return write_rows(example.parent / f"edited_{column}_{row}.csv", rows)


def all_batches(ds):
    return [ds[i] for i in range(len(ds))]


def assert_same_batches(a, b):
    import keras

    for batch_a, batch_b in zip(all_batches(a), all_batches(b), strict=True):
        for x, y in zip(keras.tree.flatten(batch_a), keras.tree.flatten(batch_b), strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kind", ["parquet", "DataFrame", "pyarrow Table"])
def test_parquet_dataframes_and_arrow_tables_give_the_csvs_batches(example, kind, monkeypatch):
    frame = pd.read_csv(example, dtype={"caption": str})
    if kind == "parquet":
        table = example.parent / "manifest.parquet"
        frame.to_parquet(table)
        root = None
    else:
        table = frame if kind == "DataFrame" else pa.Table.from_pandas(frame)
        root = example.parent
    monkeypatch.chdir("/")  # image paths resolve from the table's folder, not the cwd
    expected = from_table(example, **COLUMNS, batch_size=16)
    got = from_table(table, root=root, **COLUMNS, batch_size=16)
    for a, b in zip(expected, got, strict=True):
        assert_same_batches(a, b)


def test_batches_have_the_reference_structure_and_spec(example):
    train, val = from_table(example, **COLUMNS, batch_size=16)
    (img, txt, num), y = train[0]
    assert img.shape == (16, 16, 16, 3) and img.dtype == "float32"
    assert txt.shape == (16, 8) and txt.dtype == "int32"
    assert num.shape == (16, 5) and num.dtype == "float32"
    assert y.dtype == "int32" and set(y) <= {0, 1}
    assert train.element_spec[0][0].shape == (None, 16, 16, 3)
    assert train.num_samples == 48 and val.num_samples == 12


def test_the_split_is_deterministic_disjoint_and_complete(example):
    def rows(seed):
        train, val = from_table(example, **COLUMNS, seed=seed)
        return set(train.input_structure.fields[0].array.rows), set(
            val.input_structure.fields[0].array.rows
        )

    train_rows, val_rows = rows(0)
    assert len(val_rows) == int(0.2 * 60)
    assert not train_rows & val_rows and train_rows | val_rows == set(range(60))
    assert rows(0) == (train_rows, val_rows)
    assert rows(1)[1] != val_rows


def test_validation_keeps_every_row_in_order_whatever_the_training_options(example):
    train, val = from_table(example, **COLUMNS, batch_size=7, drop_remainder=True, shuffle=True)
    assert len(train) == 48 // 7 and train.drop_remainder
    assert not val.shuffle and not val.drop_remainder and val.batch_size == 7
    assert sum(len(val[i][1]) for i in range(len(val))) == 12


def test_preprocessing_is_fitted_on_the_training_rows_only(example):
    train, val = from_table(example, **COLUMNS)
    pre = train.preprocessing
    assert pre is val.preprocessing
    rows = read_rows(example)
    header, body = rows[0], rows[1:]
    train_rows = train.input_structure.fields[0].array.rows
    train_words = {w for r in train_rows for w in split_words(body[r][header.index("caption")])}
    assert set(pre.vocabulary.tokens[2:]) == train_words
    for j, column in enumerate(NUMERIC_COLUMNS):
        values = np.array([float(body[r][header.index(column)]) for r in train_rows])
        assert pre.standardizer.mean[j] == pytest.approx(values.mean())
        assert pre.standardizer.std[j] == pytest.approx(values.std())


def test_a_word_seen_only_in_validation_is_out_of_vocabulary(example):
    path = edited(example, 0, "caption", "zyzzyva")
    train, _ = from_table(path, **COLUMNS, seed=0)
    vocab = train.preprocessing.vocabulary
    in_train = 0 in train.input_structure.fields[0].array.rows
    assert ("zyzzyva" in vocab.tokens) == in_train


def test_saved_preprocessing_rebuilds_identical_batches_for_new_rows(example, tmp_path):
    train, val = from_table(example, **COLUMNS)
    train.preprocessing.save(tmp_path / "preprocessing.json")
    loaded = TablePreprocessing.load(tmp_path / "preprocessing.json")
    assert loaded.vocabulary == train.preprocessing.vocabulary
    assert loaded.standardizer == train.preprocessing.standardizer
    # The validation rows, as a new table: the same batches as the validation dataset.
    frame = pd.read_csv(example, dtype={"caption": str})
    val_rows = val.input_structure.fields[0].array.rows
    new = loaded.dataset(
        frame.iloc[val_rows], root=example.parent, batch_size=val.batch_size, shuffle=False
    )
    assert_same_batches(val, new)


def test_an_inference_table_without_targets_gives_inputs_only_in_table_order(example, tmp_path):
    train, _ = from_table(example, **COLUMNS)
    frame = pd.read_csv(example, dtype={"caption": str}).drop(columns="label")
    ds = train.preprocessing.dataset(frame, root=example.parent, batch_size=8)
    assert not ds.shuffle and ds.target_structure is None
    assert len(ds[0]) == 1 and len(ds[0][0]) == 3


def test_an_unfitted_preprocessing_refuses_to_scale_new_rows_by_their_own_statistics(example):
    pre = TablePreprocessing(text="caption", text_length=8)
    with pytest.raises(ValueError, match="not been fitted"):
        pre.dataset(example)


@pytest.mark.parametrize("role", ["image", "text", "numeric", "target"])
def test_a_missing_column_lists_the_columns_that_exist(example, role):
    columns = dict(COLUMNS)
    columns[role] = ["sensor_1", "sensr_2"] if role == "numeric" else "lable"
    with pytest.raises(KeyError) as info:
        from_table(example, **columns)
    message = str(info.value)
    assert "has no column" in message and "'caption'" in message and "'sensor_5'" in message
    assert "Did you mean" in message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "holds 'abc', which is not a number"),
        ("", "has no value"),
        ("nan", "has no value (NaN)"),
        ("inf", "not a finite number"),
    ],
)
def test_a_bad_numeric_cell_names_its_row_and_column(example, value, message):
    path = edited(example, 7, "sensor_2", value)
    with pytest.raises(SampleError, match=re.escape(message)) as info:
        from_table(path, **COLUMNS)
    assert "table row 7" in str(info.value) and "'sensor_2'" in str(info.value)


def test_a_caption_that_is_not_utf8_names_its_row_and_column(example):
    data = example.read_bytes().split(b"\n")
    cells = data[4].split(b",")
    cells[1] = b"caf\xe9 " + cells[1]
    data[4] = b",".join(cells)
    path = example.parent / "latin1.csv"
    path.write_bytes(b"\n".join(data))
    with pytest.raises(SampleError, match=r"not valid UTF-8 \(byte 0xe9 at character 3\)") as info:
        from_table(path, **COLUMNS)
    assert "table row 3, column 'caption'" in str(info.value)


def test_a_missing_image_names_its_row_column_and_file_when_its_batch_is_read(example):
    path = edited(example, 5, "image", "images/gone.jpg")
    train, val = from_table(path, **COLUMNS, batch_size=60)
    ds = train if 5 in train.input_structure.fields[0].array.rows else val
    with pytest.raises(SampleError, match=r"gone\.jpg' does not exist") as info:
        ds[0]
    assert "(table row 5, column 'image')" in str(info.value)


def test_replace_mode_trains_through_bad_cells_and_reports_every_one_each_epoch(example):
    import keras

    from multimodal_dataset import models

    rows = read_rows(example)
    header = rows[0]
    rows[3][header.index("image")] = "images/gone.jpg"
    rows[8][header.index("sensor_3")] = "n/a"
    rows[13][header.index("caption")] = "caf\udce9"
    path = example.parent / "bad_cells.csv"
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        csv.writer(f).writerows(rows)
    columns = dict(COLUMNS, image_size=(32, 32), text_length=20)
    train, val = from_table(path, **columns, on_error="replace", validation_split=0, batch_size=16)
    assert val is None
    model = models.build_reference_model(vocab_size=len(train.preprocessing.vocabulary))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(train, epochs=2, verbose=0)
        predictions = model.predict(train, verbose=0)
    reports = [str(w.message) for w in caught if w.category is ReplacedSamplesWarning]
    assert len(reports) >= 2 and all("3 samples were replaced" in r for r in reports[-2:])
    by_epoch = {}
    for r in train.replacements:
        by_epoch.setdefault(r.epoch, set()).add((r.sample, r.field))
    assert by_epoch[train.epoch - 1] == {(2, "inputs[0]"), (7, "inputs[2]"), (12, "inputs[1]")}
    assert all("table row" in r.reason for r in train.replacements)
    assert keras.ops.all(keras.ops.isfinite(predictions))


def test_string_labels_become_sorted_class_ids_and_unknown_ones_are_named(example, tmp_path):
    rows = read_rows(example)
    names = {"0": "dog", "1": "cat"}
    for row in rows[1:]:
        row[-1] = names[row[-1]]
    path = write_rows(example.parent / "named.csv", rows)
    train, _ = from_table(path, **COLUMNS)
    assert train.preprocessing.classes == ["cat", "dog"]
    rows[1][-1] = "bird"
    unknown = write_rows(example.parent / "unknown.csv", rows[:5])
    with pytest.raises(SampleError, match="'bird' is not one of the classes seen"):
        train.preprocessing.dataset(unknown)


def test_a_missing_target_is_never_replaced(example):
    path = edited(example, 4, "label", "")
    with pytest.raises(SampleError, match="table row 4, column 'label' has no value"):
        from_table(path, **COLUMNS, on_error="replace")


def test_float_targets_are_regression_targets(example):
    rows = read_rows(example)
    for row in rows[1:]:
        row[-1] = str(float(row[-1]) + 0.25)
    path = write_rows(example.parent / "regression.csv", rows)
    train, _ = from_table(path, **COLUMNS)
    assert train.preprocessing.target_kind == "float"
    assert train[0][1].dtype == np.float32 and set(train[0][1]) <= {0.25, 1.25}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"validation_split": 1.0}, r"must be in \[0, 1\)"),
        ({"validation_split": 0.001}, "leaves no validation row"),
        ({"image_size": None}, "image_size"),
        ({"text_length": None}, "text_length"),
        ({"image": None, "text": None, "numeric": []}, "at least one input column"),
    ],
)
def test_bad_arguments_say_what_to_do(example, kwargs, match):
    with pytest.raises(ValueError, match=match):
        from_table(example, **{**COLUMNS, **kwargs})


def test_an_unsupported_file_type_lists_the_ones_that_are(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv, \.tsv, \.parquet"):
        from_table(tmp_path / "data.xlsx", numeric=["a"])


def test_a_ragged_csv_row_is_named(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match=r"table row 1 .*has 1 fields"):
        from_table(path, numeric=["a", "b"])


def test_a_custom_tokenizer_callable_cannot_be_saved_and_says_so(example, tmp_path):
    train, _ = from_table(example, **COLUMNS, tokenizer=lambda s: [len(w) for w in s.split()])
    with pytest.raises(ValueError, match="cannot be saved"):
        train.preprocessing.save(tmp_path / "p.json")


def test_parquet_null_cells_are_named(example, tmp_path):
    frame = pd.read_csv(example, dtype={"caption": str})
    frame.loc[6, "sensor_4"] = None
    frame.to_parquet(example.parent / "nulls.parquet")
    with pytest.raises(SampleError, match=r"table row 6\): column 'sensor_4' has no value"):
        from_table(pq.read_table(example.parent / "nulls.parquet"), root=example.parent, **COLUMNS)


def numbers_table(targets, tmp_path=None, name="targets.csv"):
    """A CSV (or, without tmp_path, a DataFrame) of one numeric input and the targets."""
    rows = [["x", "y"]] + [[str(i), str(t)] for i, t in enumerate(targets)]
    if tmp_path is None:
        return pd.DataFrame({"x": np.arange(len(targets)), "y": np.asarray(targets, dtype=object)})
    return write_rows(tmp_path / name, rows)


@pytest.mark.parametrize(
    ("targets", "stray"),
    [
        ([10.5, 20.25, 30.0, 10.5, "N/A", 20.25], "row 4 ('N/A')"),
        ([10.5, 20.25, 30.0, "inf", 10.5, 20.25], "row 3 ('inf')"),
        ([1, 2, 10, 1, 2, "x"], "row 5 ('x')"),
    ],
)
def test_one_stray_cell_cannot_make_a_number_column_a_class_column(tmp_path, targets, stray):
    with pytest.raises(ValueError, match=re.escape(stray)) as info:
        from_table(numbers_table(targets, tmp_path), numeric="x", target="y", validation_split=0)
    assert "target_kind='classes'" in str(info.value)


def test_an_explicit_target_kind_decides_and_numeric_class_names_sort_as_numbers(tmp_path):
    path = numbers_table([1, 2, 10, 1, 2, "x"], tmp_path)
    train, _ = from_table(path, numeric="x", target="y", target_kind="classes", validation_split=0)
    assert train.preprocessing.classes == ["1", "2", "10", "x"]
    numbers = numbers_table([1, 2, 10, 2, 1, 10], tmp_path, "numbers.csv")
    train, _ = from_table(
        numbers, numeric="x", target="y", target_kind="classes", validation_split=0, shuffle=False
    )
    assert train.preprocessing.classes == ["1", "2", "10"]
    assert train[0][1].tolist() == [0, 1, 2, 1, 0, 2]


@pytest.mark.parametrize(
    ("kind", "targets", "match"),
    [
        ("int", [1, 2, 2.5, 1], r"row 2: column 'y' holds 2\.5, which is not an integer class id"),
        ("int", [1, 2, 3000000000, 1], r"row 2: .*outside the int32 range"),
        ("float", [1.0, 2.0, "x", 1.0], r"row 2: column 'y' holds 'x', which is not a number"),
        ("float", [1.0, 2.0, 1e39, 1.0], r"row 2: .*beyond float32's range"),
        ("ordinal", [1, 2], r"target_kind must be one of \('int', 'float', 'classes'\)"),
    ],
)
def test_a_target_that_does_not_fit_its_kind_is_named(kind, targets, match):
    with pytest.raises(ValueError, match=match):
        from_table(
            numbers_table(targets), numeric="x", target="y", target_kind=kind, validation_split=0
        )


def test_integer_targets_beyond_int32_are_an_error_not_a_wrap(tmp_path):
    path = numbers_table([1, 2, 3000000000, 1], tmp_path)
    with pytest.raises(
        ValueError, match=r"3000000000, outside the int32 range.*target_kind='float'"
    ):
        from_table(path, numeric="x", target="y", validation_split=0)


def test_fractional_targets_at_inference_are_an_error_not_a_truncation(tmp_path):
    train, _ = from_table(
        numbers_table([1.0, 2.0, 3.0, 1.0], tmp_path), numeric="x", target="y", validation_split=0
    )
    assert train.preprocessing.target_kind == "int"
    new = numbers_table([1.7, 2.7, 3.7], tmp_path, "new.csv")
    with pytest.raises(SampleError, match=r"sample 0 \(table row 0\): column 'y' holds 1\.7, "):
        train.preprocessing.dataset(new)


def test_a_table_with_its_target_column_is_read_in_row_order_for_predict(example):
    train, _ = from_table(example, **COLUMNS)
    ds = train.preprocessing.dataset(example, batch_size=8)
    assert not ds.shuffle
    np.testing.assert_array_equal(ds.batch_indices(0), np.arange(8))
    labels = np.concatenate([ds[i][1] for i in range(len(ds))])
    np.testing.assert_array_equal(labels, [int(r[-1]) for r in read_rows(example)[1:]])
    assert train.preprocessing.dataset(example, shuffle=True).shuffle


def test_a_csv_saved_by_excel_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffx,y\n1,0\n2,1\n3,0\n4,1\n".encode())
    train, _ = from_table(path, numeric="x", target="y", validation_split=0)
    assert train.preprocessing.numeric == ("x",)


def test_image_paths_in_a_table_may_not_leave_its_folder(example, tmp_path):
    rows = read_rows(example)
    image = rows[0].index("image")
    outside = tmp_path / "outside.png"
    outside.write_bytes((example.parent / rows[1][image]).read_bytes())
    rows[2][image] = os.path.relpath(outside, example.parent)  # ../.../outside.png
    rows[3][image] = "/etc/passwd"
    path = write_rows(example.parent / "escaping.csv", rows)
    with pytest.raises(SampleError, match=r"table row 1, column 'image'.*leads outside") as info:
        from_table(path, **COLUMNS, validation_split=0)
    assert "'../" in str(info.value) and "1 more path also outside" in str(info.value)
    train, _ = from_table(path, **COLUMNS, allow_outside_root=True, validation_split=0)
    assert len(train.input_structure.fields[0].array.paths) == 60


def test_a_table_path_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "manifest.csv"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        from_table(fifo, numeric="x")
