"""Arrow-backed tables: pyarrow Tables, Hugging Face datasets, and Parquet or Arrow files.

Small columns are read into memory when asked for (only that column: Parquet reads it
alone, Arrow maps it in place). An image column of bytes or ``{bytes, path}`` structs is
never read: it becomes an `ArrowColumn` over memory-mapped Arrow files (Parquet and
compressed Arrow files are converted once, see ``arrow_cache``), or over the table that
is already in memory.

Many files are one table, in the order given: every file must have the columns used,
with the type the first file gives them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset.io.arrow_column import ArrowColumn, check_image_type, open_ipc
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.storage_errors import StorageError
from multimodal_dataset.io.urls import is_remote, parent
from multimodal_dataset.sources.text.streaming import CHUNK
from multimodal_dataset.tables.arrow_cache import mappable_column_file
from multimodal_dataset.tables.table import Table


def _is_path_type(arrow_type: Any) -> bool:
    pa = optional_import("pyarrow", "Reading Arrow tables")
    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _to_numpy(column: Any, name: str = "", where: str = "") -> np.ndarray:
    pa = optional_import("pyarrow", "Reading Arrow and Parquet files")
    try:
        values: np.ndarray = column.to_numpy(zero_copy_only=False)
    except pa.ArrowException as error:
        raise ValueError(
            f"Column {name!r}{where} ({column.type}) cannot be read as one value per row: "
            f"{error}. Pass a column of numbers, strings or images, or convert it first."
        ) from None
    return values


def check_arrow_kind(arrow_type: Any, name: str, role: str, where: str) -> None:
    """Refuses a nested column (list, struct, map) for a role that takes one number per
    row, naming the column, where it is and its type."""
    pa = optional_import("pyarrow", "Reading Arrow and Parquet files")
    if role == "numeric" and pa.types.is_temporal(arrow_type):
        raise ValueError(temporal_error(name, f"{where} holds {arrow_type}"))
    if role == "categorical" and pa.types.is_nested(arrow_type):
        raise ValueError(
            f"categorical={name!r}: column {name!r}{where} holds {arrow_type}, not one "
            "category per row; categorical= takes string, integer or boolean columns. A "
            "list of labels per row is a target (target_kind='multi_label')."
        )
    if role == "numeric" and pa.types.is_nested(arrow_type):
        raise ValueError(
            f"numeric={name!r}: column {name!r}{where} holds {arrow_type}, not one number "
            "per row; numeric= takes integer, float, boolean or decimal columns (or "
            "strings of numbers). Split a list of numbers into one column per number, or "
            "read it with your own Source."
        )


def temporal_error(name: str, what: str) -> str:
    """The message for a date or time column given as ``numeric=``."""
    return (
        f"numeric={name!r}: column {name!r}{what}, a date or time, not a number: as a "
        "number it would be read as time since 1970 in some unit. Convert it explicitly "
        "into the numbers the model should see (e.g. pandas: df[col].dt.dayofweek, "
        ".dt.hour, or (df[col] - start).dt.days) and pass those columns."
    )


class ArrowTable(Table):
    """A pyarrow Table, or the table of a Hugging Face ``datasets.Dataset``, in place.

    Args:
        table: A pyarrow Table, or anything with ``schema``, ``num_rows`` and
            ``column(name)`` (a ``datasets`` table, which pickles as its file paths when
            memory-mapped).
        row_map: Row ``i`` of this table is row ``row_map[i]`` of ``table`` (a Hugging
            Face dataset after ``shuffle``, ``select`` or ``train_test_split``).
        folder, name: See `Table`.
    """

    def __init__(
        self, table: Any, folder: str | None, name: str, row_map: np.ndarray | None = None
    ) -> None:
        super().__init__(folder, name)
        self.table = table
        self.row_map = row_map

    @property
    def names(self) -> list[str]:
        return list(self.table.schema.names)

    def __len__(self) -> int:
        return len(self.row_map) if self.row_map is not None else int(self.table.num_rows)

    def check_column(self, name: str, role: str) -> None:
        super().check_column(name, role)
        check_arrow_kind(self.table.schema.field(name).type, name, role, f" of {self.name}")

    def _schema_metadata(self) -> Any:
        return self.table.schema.metadata

    def _read(self, name: str) -> np.ndarray:
        column = self.table.column(name)
        if self.row_map is not None:
            column = column.take(self.row_map)
        return _to_numpy(column, name, f" of {self.name}")

    def _arrow_batches(self, name: str) -> Callable[[], Iterator[tuple[int, Any]]] | None:
        column = self.table.column(name)
        if self.row_map is not None:
            column = column.take(self.row_map)  # compact Arrow, not Python objects

        def batches() -> Iterator[tuple[int, Any]]:
            first = 0
            for chunk in column.chunks:
                yield first, chunk
                first += len(chunk)

        return batches

    def _images(self, name: str) -> ArrowColumn | None:
        arrow_type = self.table.schema.field(name).type
        if _is_path_type(arrow_type):
            return None
        check_image_type(arrow_type, name, f" of {self.name}")
        return ArrowColumn.from_table(self.table, name, self.row_map)


class FileTable(Table):
    """Parquet or Arrow IPC/Feather files, read as one table in the order given.

    Args:
        files: The files, all of one format.
        file_format: ``"parquet"`` or ``"arrow"``.
        cache_dir: Where image columns are converted (see ``arrow_cache``).
        name: See `Table`. The folder is the first file's.
        storage: Reads files that are URLs; their image columns are copied into the
            cache folder once, to be memory-mapped.
    """

    def __init__(
        self,
        files: Sequence[str],
        file_format: str,
        name: str,
        cache_dir: str | os.PathLike[str] | None = None,
        storage: Storage | None = None,
    ) -> None:
        super().__init__(parent(files[0]), name)
        self.files = list(files)
        self.file_format = file_format
        self.cache_dir = cache_dir
        self.storage = storage or Storage()
        self.schemas: list[Any] = []
        self.row_counts: list[int] = []
        for path in self.files:
            schema, rows = self._schema_and_rows(path)
            self.schemas.append(schema)
            self.row_counts.append(rows)
        self._checked: set[str] = set()

    def _schema_and_rows(self, path: str) -> tuple[Any, int]:
        pa = optional_import("pyarrow", "Reading Arrow and Parquet files")
        try:
            if self.file_format == "parquet":
                pq = optional_import("pyarrow.parquet", "Reading Parquet")
                with opened(path, self.storage) as f:
                    parquet = pq.ParquetFile(f)
                    # The row groups' counts, not the footer's total: older writers leave
                    # that 0 (or wrong) while the row groups hold the rows.
                    metadata = parquet.metadata
                    rows = sum(
                        metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)
                    )
                    return parquet.schema_arrow, int(rows)
            with opened(path, self.storage) as mapped:
                schema = open_ipc(mapped).schema
                mapped.seek(0)
                # Count rows reading one small column: nothing large is decompressed.
                reader = open_ipc(mapped, _smallest_column(schema))
                if hasattr(reader, "get_batch"):
                    rows = sum(
                        reader.get_batch(i).num_rows for i in range(reader.num_record_batches)
                    )
                else:
                    rows = sum(batch.num_rows for batch in reader)
                return schema, rows
        except (StorageError, FileNotFoundError, PermissionError):
            raise
        except (pa.ArrowInvalid, OSError) as error:
            kind = "a Parquet" if self.file_format == "parquet" else "an Arrow IPC/Feather"
            raise ValueError(f"{path!r} is not {kind} file pyarrow can read: {error}") from None

    @property
    def names(self) -> list[str]:
        return list(self.schemas[0].names)

    def __len__(self) -> int:
        return sum(self.row_counts)

    def _schema_metadata(self) -> Any:
        return self.schemas[0].metadata

    def _starts(self) -> list[int]:
        return [int(s) for s in np.cumsum([0, *self.row_counts[:-1]])]

    def check_column(self, name: str, role: str) -> None:
        """Also checks that every file has the column, with the first file's type."""
        super().check_column(name, role)
        first = self.schemas[0].field(name).type
        check_arrow_kind(first, name, role, f" of {self.files[0]!r}")
        if name in self._checked:
            return
        for path, schema in zip(self.files[1:], self.schemas[1:], strict=True):
            if name not in schema.names:
                raise ValueError(
                    f"{role}={name!r}: {path!r} has no column {name!r}, which the first file "
                    f"{self.files[0]!r} has. Every file of a table needs the same columns; "
                    f"this one has: {', '.join(map(repr, schema.names))}."
                )
            if schema.field(name).type != first:
                raise ValueError(
                    f"{role}={name!r}: column {name!r} is {schema.field(name).type} in "
                    f"{path!r} but {first} in the first file {self.files[0]!r}. Every file "
                    "of a table needs the same column types; rewrite the odd file with the "
                    "first file's schema."
                )
        self._checked.add(name)

    def _read(self, name: str) -> np.ndarray:
        pa = optional_import("pyarrow", "Reading Arrow and Parquet files")
        chunks = []
        for path in self.files:
            with self._reading(path, name), opened(path, self.storage) as f:
                if self.file_format == "parquet":
                    pq = optional_import("pyarrow.parquet", "Reading Parquet")
                    chunks.append(pq.ParquetFile(f).read(columns=[name]).column(name))
                else:
                    chunks.append(open_ipc(f, name).read_all().column(name))
        if not chunks:
            return np.zeros(0)
        return _to_numpy(
            pa.chunked_array([c for chunk in chunks for c in chunk.chunks], type=chunks[0].type),
            name,
            f" of {self.files[0]!r}",
        )

    def _arrow_batches(self, name: str) -> Callable[[], Iterator[tuple[int, Any]]] | None:
        def batches() -> Iterator[tuple[int, Any]]:
            for path, first in zip(self.files, self._starts(), strict=True):
                with self._reading(path, name), opened(path, self.storage) as f:
                    if self.file_format == "parquet":
                        pq = optional_import("pyarrow.parquet", "Reading Parquet")
                        parts = pq.ParquetFile(f).iter_batches(batch_size=CHUNK, columns=[name])
                    else:
                        parts = iter(open_ipc(f, name))
                    for batch in parts:
                        yield first, batch.column(0)
                        first += batch.num_rows

        return batches

    @contextlib.contextmanager
    def _reading(self, path: str, name: str) -> Iterator[None]:
        """Words an error reading column ``name`` of ``path`` as a corrupt file."""
        pa = optional_import("pyarrow", "Reading Arrow and Parquet files")
        try:
            yield
        except (StorageError, FileNotFoundError, PermissionError):
            raise
        except (pa.ArrowException, OSError) as error:
            kind = "Parquet" if self.file_format == "parquet" else "Arrow IPC/Feather"
            raise ValueError(
                f"Column {name!r} of {path!r} cannot be read ({type(error).__name__}: "
                f"{error}): the {kind} file is corrupt or truncated. Write it again, or "
                "leave it out of the table."
            ) from None

    def _images(self, name: str) -> ArrowColumn | None:
        arrow_type = self.schemas[0].field(name).type
        if _is_path_type(arrow_type):
            return None
        check_image_type(arrow_type, name, f" of {self.files[0]!r}")
        mapped = [
            mappable_column_file(path, name, self.file_format, rows, self.cache_dir, self.storage)
            for path, rows in zip(self.files, self.row_counts, strict=True)
        ]
        parts = list(zip(self.files, self._starts(), strict=True))
        return ArrowColumn.from_files(mapped, name, parts=parts)


@contextlib.contextmanager
def opened(path: str, storage: Storage | None) -> Iterator[Any]:
    """A readable, seekable file of ``path``: a memory map of a local file, or a file
    of a URL that reads ahead (see ``storage``)."""
    if is_remote(path):
        with (storage or Storage()).open(path) as f:
            yield f
    else:
        pa = optional_import("pyarrow", "Reading Arrow and Parquet files")
        with pa.memory_map(path) as mapped:
            yield mapped


def _smallest_column(schema: Any) -> str:
    pa = optional_import("pyarrow", "Reading Arrow files")
    for field in schema:
        if not (
            pa.types.is_nested(field.type)
            or pa.types.is_binary(field.type)
            or pa.types.is_large_binary(field.type)
        ):
            return str(field.name)
    return str(schema.names[0])
