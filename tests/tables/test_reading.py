"""Reading tables: CSV (Excel's byte-order mark too), Parquet, DataFrames and pyarrow
Tables give the same columns; bad files, rows and cells are named."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import (
    COLUMNS,
    assert_same_batches,
)
from multimodal_dataset import (
    SampleError,
    from_table,
)


@pytest.mark.keras
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


@pytest.mark.parametrize("role", ["image", "text", "numeric", "target"])
def test_a_missing_column_lists_the_columns_that_exist(example, role):
    columns = dict(COLUMNS)
    columns[role] = ["sensor_1", "sensr_2"] if role == "numeric" else "lable"
    with pytest.raises(KeyError) as info:
        from_table(example, **columns)
    message = str(info.value)
    assert "has no column" in message and "'caption'" in message and "'sensor_5'" in message
    assert "Did you mean" in message


def test_an_unsupported_file_type_lists_the_ones_that_are(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv/\.tsv file; a \.parquet, \.arrow or \.feather"):
        from_table(tmp_path / "data.xlsx", numeric=["a"])


def test_a_ragged_csv_row_is_named(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match=r"table row 1 .*has 1 fields"):
        from_table(path, numeric=["a", "b"])


@pytest.mark.keras
def test_parquet_null_cells_are_named(example, tmp_path):
    frame = pd.read_csv(example, dtype={"caption": str})
    frame.loc[6, "sensor_4"] = None
    frame.to_parquet(example.parent / "nulls.parquet")
    with pytest.raises(SampleError, match=r"table row 6\): column 'sensor_4' has no value"):
        from_table(pq.read_table(example.parent / "nulls.parquet"), root=example.parent, **COLUMNS)


@pytest.mark.keras
def test_a_csv_saved_by_excel_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffx,y\n1,0\n2,1\n3,0\n4,1\n".encode())
    train, _ = from_table(path, numeric="x", target="y", validation_split=0)
    assert train.preprocessing.numeric == ("x",)


def test_a_table_path_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "manifest.csv"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        from_table(fifo, numeric="x")
