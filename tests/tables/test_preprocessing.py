"""TablePreprocessing: fitted on the training rows, saved and reloaded, and applied to new
rows in table order exactly as to the training rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import (
    COLUMNS,
    assert_same_batches,
    edited,
    read_rows,
)
from multimodal_dataset import (
    TablePreprocessing,
    from_table,
)
from multimodal_dataset.example import NUMERIC_COLUMNS
from multimodal_dataset.sources.text.vocabulary import split_words


@pytest.mark.keras
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


@pytest.mark.keras
def test_a_word_seen_only_in_validation_is_out_of_vocabulary(example):
    path = edited(example, 0, "caption", "zyzzyva")
    train, _ = from_table(path, **COLUMNS, seed=0)
    vocab = train.preprocessing.vocabulary
    in_train = 0 in train.input_structure.fields[0].array.rows
    assert ("zyzzyva" in vocab.tokens) == in_train


@pytest.mark.keras
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


@pytest.mark.keras
def test_an_inference_table_without_targets_gives_inputs_only_in_table_order(example, tmp_path):
    train, _ = from_table(example, **COLUMNS)
    frame = pd.read_csv(example, dtype={"caption": str}).drop(columns="label")
    ds = train.preprocessing.dataset(frame, root=example.parent, batch_size=8)
    assert not ds.shuffle and ds.target_structure is None
    assert len(ds[0]) == 1 and len(ds[0][0]) == 3


def test_an_unfitted_preprocessing_refuses_to_scale_new_rows_by_their_own_statistics(example):
    pre = TablePreprocessing(texts=("caption",), text_length=8)
    with pytest.raises(ValueError, match="not been fitted"):
        pre.dataset(example)


@pytest.mark.keras
def test_a_custom_tokenizer_callable_cannot_be_saved_and_says_so(example, tmp_path):
    train, _ = from_table(example, **COLUMNS, tokenizer=lambda s: [len(w) for w in s.split()])
    with pytest.raises(ValueError, match="cannot be saved"):
        train.preprocessing.save(tmp_path / "p.json")


@pytest.mark.keras
def test_a_table_with_its_target_column_is_read_in_row_order_for_predict(example):
    train, _ = from_table(example, **COLUMNS)
    ds = train.preprocessing.dataset(example, batch_size=8)
    assert not ds.shuffle
    np.testing.assert_array_equal(ds.batch_indices(0), np.arange(8))
    labels = np.concatenate([ds[i][1] for i in range(len(ds))])
    np.testing.assert_array_equal(labels, [int(r[-1]) for r in read_rows(example)[1:]])
    assert train.preprocessing.dataset(example, shuffle=True).shuffle
