"""from_table: a table of real files to (train, validation) datasets, split by seed,
fitted on the training rows only, and every bad cell or path named by row and column."""

from __future__ import annotations

import csv
import os
import re
import warnings

import numpy as np
import pytest

from conftest import (
    COLUMNS,
    all_batches,
    edited,
    read_rows,
    write_rows,
)
from multimodal_dataset import (
    ReplacedSamplesWarning,
    SampleError,
    from_table,
)


@pytest.mark.keras
def test_batches_have_the_reference_structure_and_spec(example):
    train, val = from_table(example, **COLUMNS, batch_size=16)
    (img, txt, num), y = train[0]
    assert img.shape == (16, 16, 16, 3) and img.dtype == "float32"
    assert txt.shape == (16, 8) and txt.dtype == "int32"
    assert num.shape == (16, 5) and num.dtype == "float32"
    assert y.dtype == "int32" and set(y) <= {0, 1}
    assert train.element_spec[0][0].shape == (None, 16, 16, 3)
    assert train.num_samples == 48 and val.num_samples == 12


@pytest.mark.keras
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


@pytest.mark.keras
def test_validation_keeps_every_row_in_order_whatever_the_training_options(example):
    train, val = from_table(example, **COLUMNS, batch_size=7, drop_remainder=True, shuffle=True)
    assert len(train) == 48 // 7 and train.drop_remainder
    assert not val.shuffle and not val.drop_remainder and val.batch_size == 7
    assert sum(len(val[i][1]) for i in range(len(val))) == 12


@pytest.mark.keras
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


@pytest.mark.keras
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


@pytest.mark.keras
def test_a_missing_image_names_its_row_column_and_file_when_its_batch_is_read(example):
    path = edited(example, 5, "image", "images/gone.jpg")
    train, val = from_table(path, **COLUMNS, batch_size=60)
    ds = train if 5 in train.input_structure.fields[0].array.rows else val
    with pytest.raises(SampleError, match=r"gone\.jpg' does not exist") as info:
        ds[0]
    assert "(table row 5, column 'image')" in str(info.value)


@pytest.mark.backend
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


@pytest.mark.keras
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


@pytest.mark.keras
def test_text_buckets_and_length_grouping_pass_through_and_are_saved(example, tmp_path):
    from multimodal_dataset import TablePreprocessing

    columns = {k: v for k, v in COLUMNS.items() if k != "text_length"}
    train, val = from_table(
        example, **columns, text_buckets=(2, 4, 8), group_by_length=True, batch_size=8, seed=1
    )
    assert train.element_spec[0][1].shape == (None, None)
    widths = {train[i][0][1].shape[1] for i in range(len(train))}
    assert widths <= {2, 4, 8}
    assert {val[i][0][1].shape[1] for i in range(len(val))} <= {2, 4, 8}
    train.preprocessing.save(tmp_path / "p.json")
    loaded = TablePreprocessing.load(tmp_path / "p.json")
    assert loaded.text_buckets == (2, 4, 8) and loaded.text_length is None
    again = loaded.dataset(example, batch_size=8)
    assert again.element_spec[0][1].shape == (None, None)


def test_text_without_a_length_or_buckets_says_which_to_give(example):
    columns = {k: v for k, v in COLUMNS.items() if k != "text_length"}
    with pytest.raises(ValueError, match=r"text_length= .* or text_buckets="):
        from_table(example, **columns)


@pytest.mark.keras
def test_a_trained_subword_tokenizer_is_saved_and_reloaded_with_the_preprocessing(
    example, tmp_path
):
    from multimodal_dataset import TablePreprocessing, testing

    train, _ = from_table(example, **COLUMNS, tokenizer="bpe", max_tokens=80, seed=2)
    trained = train.preprocessing.tokenizer
    assert trained.get_vocab_size() <= 80 and train.preprocessing.vocabulary is None
    train.preprocessing.save(tmp_path / "p.json")
    loaded = TablePreprocessing.load(tmp_path / "p.json")
    assert loaded.tokenizer.to_str() == trained.to_str()
    again = loaded.dataset(example, batch_size=8)
    same = train.preprocessing.dataset(example, batch_size=8)
    assert testing.stream_digest(again, 1) == testing.stream_digest(same, 1)


@pytest.mark.keras
def test_a_cache_serves_the_same_batches_and_the_next_run_decodes_and_tokenizes_nothing(
    example, tmp_path, monkeypatch
):
    import keras

    from multimodal_dataset.sources.images.decoding import ImageDecoder
    from multimodal_dataset.sources.text import tokens as text_module

    def batches(train, val):
        return keras.tree.flatten(all_batches(train) + all_batches(val))

    expected = batches(*from_table(example, **COLUMNS, batch_size=16))
    for run in range(2):
        if run == 1:  # every image and caption was cached by the first run
            monkeypatch.setattr(ImageDecoder, "decode", lambda self, data: pytest.fail("decoded"))
            monkeypatch.setattr(text_module, "tokenize_chunks", lambda *a: pytest.fail("tokenized"))
        cached = batches(*from_table(example, **COLUMNS, batch_size=16, cache=tmp_path))
        for x, y in zip(cached, expected, strict=True):
            np.testing.assert_array_equal(x, y)
    assert len(list(tmp_path.glob("decoded-*"))) == 2  # training and validation images
    assert len(list(tmp_path.glob("tokens-*"))) == 2  # and captions
