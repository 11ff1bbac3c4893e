"""Target columns: the kind decided from the whole column or given, classes in a stable
order, and no stray cell, wrap, truncation or inf passing silently."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import (
    COLUMNS,
    edited,
    numbers_table,
    read_rows,
    write_rows,
)
from multimodal_dataset import (
    SampleError,
    from_table,
)


@pytest.mark.keras
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


@pytest.mark.keras
def test_float_targets_are_regression_targets(example):
    rows = read_rows(example)
    for row in rows[1:]:
        row[-1] = str(float(row[-1]) + 0.25)
    path = write_rows(example.parent / "regression.csv", rows)
    train, _ = from_table(path, **COLUMNS)
    assert train.preprocessing.target_kind == "float"
    assert train[0][1].dtype == np.float32 and set(train[0][1]) <= {0.25, 1.25}


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


@pytest.mark.keras
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
        ("ordinal", [1, 2], r"must be one of \('int', 'float', 'classes', 'multi_label'\)"),
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


@pytest.mark.keras
def test_fractional_targets_at_inference_are_an_error_not_a_truncation(tmp_path):
    train, _ = from_table(
        numbers_table([1.0, 2.0, 3.0, 1.0], tmp_path), numeric="x", target="y", validation_split=0
    )
    assert train.preprocessing.target_kind == "int"
    new = numbers_table([1.7, 2.7, 3.7], tmp_path, "new.csv")
    with pytest.raises(SampleError, match=r"sample 0 \(table row 0\): column 'y' holds 1\.7, "):
        train.preprocessing.dataset(new)
