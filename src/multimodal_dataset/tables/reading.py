"""Tables as the library reads them: CSV/TSV, Parquet, pandas DataFrames and pyarrow
Tables, each column one numpy array, with the folder relative paths start from.

The readers are the extension point for the table formats to come (many Parquet files,
Arrow, Hugging Face datasets): each returns a `Table`.
"""

from __future__ import annotations

import csv
import difflib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from multimodal_dataset.files import check_regular_file
from multimodal_dataset.optional import optional_import
from multimodal_dataset.sources.arrays import class_names


@dataclass
class Table:
    """A table read into memory: column name -> one numpy array per column.

    Attributes:
        columns: The columns, in the table's order.
        folder: The folder of the table's file, that relative image paths start from
            (None for an in-memory frame).
        name: A description for messages, e.g. the file name.
    """

    columns: dict[str, np.ndarray]
    folder: str | None
    name: str

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column(self, name: str, role: str) -> np.ndarray:
        """The column ``name``, or an error listing the columns that exist."""
        if name not in self.columns:
            existing = list(self.columns)
            close = difflib.get_close_matches(str(name), [str(c) for c in existing], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(
                f"{role}={name!r}: {self.name} has no column {name!r}.{hint} Its columns are: "
                f"{', '.join(map(repr, existing))}."
            )
        return self.columns[name]


def read_table(source: Any) -> Table:
    """Reads a CSV/TSV or Parquet path, a pandas DataFrame or a pyarrow Table.

    CSV files are read as UTF-8 with Python's ``csv`` module (no extra dependency); bytes
    that are not UTF-8 are kept (as surrogate escapes) so the error can name the row and
    column. Parquet needs ``pyarrow``.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        folder = os.path.dirname(os.path.abspath(path))
        name = f"table {path!r}"
        check_regular_file(path, "a .csv, .tsv or .parquet file")
        lowered = path.lower()
        if lowered.endswith((".csv", ".tsv", ".txt")):
            return Table(_read_csv(path, "\t" if lowered.endswith(".tsv") else ","), folder, name)
        if lowered.endswith((".parquet", ".pq")):
            pq = optional_import("pyarrow.parquet", "Reading Parquet")
            return Table(_arrow_columns(pq.read_table(path)), folder, name)
        raise ValueError(
            f"Cannot read {path!r}: from_table reads .csv, .tsv, .parquet and .pq files, or a "
            "pandas DataFrame or pyarrow Table."
        )
    kinds = class_names(source)
    if "pandas.DataFrame" in kinds:
        return Table({c: source[c].to_numpy() for c in source.columns}, None, "the DataFrame")
    if "pyarrow.Table" in kinds:
        return Table(_arrow_columns(source), None, "the pyarrow Table")
    if isinstance(source, Table):
        return source
    raise TypeError(
        "from_table takes the path of a .csv or .parquet file, a pandas DataFrame or a "
        f"pyarrow Table; got {type(source).__name__}."
    )


def _read_csv(path: str, delimiter: str) -> dict[str, np.ndarray]:
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which is not a name.
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path!r} is empty; a table needs a header row.") from None
        rows = list(reader)
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(
                f"{path!r}, table row {i} (line {reader.line_num - len(rows) + i + 1}) has "
                f"{len(row)} fields, but the header has {len(header)}: {header!r}. Quote "
                "fields that contain the delimiter."
            )
    columns = {}
    for j, name in enumerate(header):
        values = np.empty(len(rows), dtype=object)
        values[:] = [row[j] for row in rows]
        columns[name] = values
    return columns


def _arrow_columns(table: Any) -> dict[str, np.ndarray]:
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
