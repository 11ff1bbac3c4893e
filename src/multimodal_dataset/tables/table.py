"""`Table`: what `from_table` needs of a table, whatever stores it.

Small columns (captions, numbers, targets, image paths) are read into memory as numpy
arrays when first asked for; an image column of encoded bytes is not read at all but
handed out as an `ArrowColumn`, read a batch at a time while training. `MemoryTable` is a
table already in memory (a CSV file, a pandas DataFrame); the Arrow-backed tables
(Parquet and Arrow files, pyarrow Tables, Hugging Face datasets) are in ``arrow_tables``.
"""

from __future__ import annotations

import abc
import difflib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from multimodal_dataset.io.storage import Storage
from multimodal_dataset.sources.images.from_bytes import EncodedColumn, as_encoded_column
from multimodal_dataset.sources.text.streaming import CHUNK, Chunk, TextChunks


class Table(abc.ABC):
    """A table's column names and length, with columns read on demand.

    Attributes:
        folder: The folder relative image paths start from (None: the working directory);
            a URL for a table on remote storage.
        name: A description for messages, e.g. ``table 'train.parquet'``.
    """

    def __init__(self, folder: str | None, name: str) -> None:
        self.folder = folder
        self.name = name
        #: Reads the table's URLs and image URLs (None: every path is local).
        self.storage: Storage | None = None
        self._read_columns: dict[str, np.ndarray] = {}

    @property
    @abc.abstractmethod
    def names(self) -> list[str]:
        """The column names, in the table's order."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of rows."""

    @abc.abstractmethod
    def _read(self, name: str) -> np.ndarray:
        """Reads column ``name`` (which exists) into memory."""

    @abc.abstractmethod
    def _images(self, name: str) -> EncodedColumn | None:
        """Column ``name`` (which exists) as stored image bytes, or None if it holds paths."""

    def column(self, name: str, role: str, keep: bool = True) -> np.ndarray:
        """Column ``name`` as a numpy array (read once), or a KeyError listing the columns.

        Args:
            name: The column.
            role: What the column is for (``"text"``, ``"target"``...), for the message.
            keep: Keep it for the next call; False reads it again each time (a column
                used once per dataset, so that a table's columns are not all held).
        """
        self.check_column(name, role)
        if name in self._read_columns:
            return self._read_columns[name]
        values = self._read(name)
        if keep:
            self._read_columns[name] = values
        return values

    def text_chunks(self, name: str, rows: np.ndarray) -> TextChunks:
        """The cells of column ``name`` at ``rows``, read a chunk at a time: a table
        stored as Arrow hands out its record batches (see `_arrow_batches`), so the
        captions of a billion rows are never all Python strings at once; others slice
        the column read into memory."""
        self.check_column(name, "text")
        batches = self._arrow_batches(name)
        if batches is None:
            return TextChunks.of(self.column(name, "text")[rows])
        return rows_of_batches(batches, np.asarray(rows, np.int64))

    def _arrow_batches(self, name: str) -> Callable[[], Iterator[tuple[int, Any]]] | None:
        """A new iterator of ``(first row, pyarrow array)`` over column ``name`` in table
        order, or None where the table is not stored as Arrow."""
        return None

    def images(self, name: str) -> EncodedColumn | None:
        """Column ``name`` as stored image bytes (not read), or None for a column of paths."""
        self.check_column(name, "image")
        return self._images(name)

    def missing(self, name: str) -> Mapping[int, str]:
        """Rows whose cell of ``name`` is absent from storage (a sample without the member),
        each with what is missing; the cells read as None."""
        return {}

    def class_names(self, name: str) -> list[str] | None:
        """The class names a Hugging Face ``ClassLabel`` (or ``Sequence(ClassLabel)``)
        column declares, read from the table's ``huggingface`` schema metadata (what
        ``datasets`` writes into its Arrow and Parquet files); None where there are none."""
        feature = hf_features(self._schema_metadata()).get(name)
        if isinstance(feature, list) and len(feature) == 1:  # the older list form
            feature = feature[0]
        if isinstance(feature, dict) and feature.get("_type") in ("Sequence", "List", "LargeList"):
            feature = feature.get("feature")
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
            names = feature.get("names")
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return names
        return None

    def _schema_metadata(self) -> Mapping[bytes, bytes] | None:
        """The Arrow schema's metadata, where the table is stored as Arrow."""
        return None

    def describe_row(self, row: int) -> str:
        """Names ``row`` in messages, e.g. ``table row 7`` or ``key '000123' of shard 'a.tar'``."""
        return f"table row {row}"

    def check_column(self, name: str, role: str) -> None:
        """A KeyError naming the table, the missing column and the columns it has."""
        if name not in self.names:
            existing = self.names
            close = difflib.get_close_matches(str(name), [str(c) for c in existing], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(
                f"{role}={name!r}: {self.name} has no column {name!r}.{hint} Its columns are: "
                f"{', '.join(map(repr, existing))}."
            )


def hf_features(metadata: Mapping[bytes, bytes] | None) -> dict[str, Any]:
    """The ``features`` Hugging Face ``datasets`` keeps in a schema's metadata, by column
    (empty where there are none or they do not parse)."""
    raw = (metadata or {}).get(b"huggingface")
    if not raw:
        return {}
    try:
        features = json.loads(raw.decode("utf-8")).get("info", {}).get("features", {})
    except (UnicodeDecodeError, ValueError, AttributeError):
        return {}
    return features if isinstance(features, dict) else {}


class MemoryTable(Table):
    """A table whose columns are numpy arrays already in memory (CSV, pandas).

    A column of ``bytes`` (or of ``{"bytes", "path"}`` dicts) is an image column.
    """

    def __init__(self, columns: Mapping[str, np.ndarray], folder: str | None, name: str) -> None:
        super().__init__(folder, name)
        self.columns = dict(columns)

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def _read(self, name: str) -> np.ndarray:
        return self.columns[name]

    def _images(self, name: str) -> EncodedColumn | None:
        values = self.columns[name]
        first = next((v for v in values if v is not None), None)
        if isinstance(first, (bytes, bytearray, dict)):
            return as_encoded_column(values, name)
        return None


def rows_of_batches(
    batches: Callable[[], Iterator[tuple[int, Any]]], rows: np.ndarray, size: int = CHUNK
) -> TextChunks:
    """`TextChunks` of the cells at ``rows`` (sample ``k`` is table row ``rows[k]``) out
    of a column's record batches in table order: each batch gives the samples whose rows
    fall in it, ``size`` at a time."""
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]

    def chunks() -> Iterator[Chunk]:
        for first, array in batches():
            lo, hi = (int(i) for i in np.searchsorted(sorted_rows, [first, first + len(array)]))
            for start in range(lo, hi, size):
                stop = min(start + size, hi)
                taken = array.take(sorted_rows[start:stop] - first)
                yield order[start:stop], taken.to_pylist()

    return TextChunks(len(rows), chunks)
