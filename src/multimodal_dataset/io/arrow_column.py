"""`ArrowColumn`: random access to a column of encoded images stored in Arrow.

The bytes stay where they are: in memory-mapped, uncompressed Arrow IPC files (what
Hugging Face ``datasets`` writes, and what Parquet image columns are converted to once),
or in an Arrow table the caller already holds. Reading a sample copies its bytes only;
the pages of a memory map are file-backed, so they do not grow the process's anonymous
memory, and the operating system drops them under pressure.

A column pickles as the paths of its files (each worker process maps them again), or,
for a table held in memory, as that table.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset._utils.picklable import Picklable

#: An Arrow IPC file in the file format starts with these bytes; the stream format does not.
IPC_FILE_MAGIC = b"ARROW1"


class ArrowColumn(Picklable):
    """One column of a table, each value encoded image bytes, a ``{bytes, path}`` struct
    (the Hugging Face ``datasets.Image()`` storage) or null.

    Build it with `from_files` (memory-mapped Arrow IPC files, read lazily in each
    process) or `from_table` (a table in memory, or anything with ``.column(name)``).

    Attributes:
        name: The column's name.
        parts: ``(label, first_row)`` of each file the rows came from, for messages.
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_chunks": lambda: None,
        "_lock": threading.Lock,
        "_stats": dict,
    }

    def __init__(
        self,
        name: str,
        *,
        files: Sequence[str] = (),
        table: Any = None,
        row_map: np.ndarray | None = None,
        parts: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.name = name
        self.files = [os.fspath(f) for f in files]
        self.table = table
        self.row_map = None if row_map is None else np.asarray(row_map, dtype=np.int64)
        self.parts = list(parts)
        self._starts = np.zeros(0, dtype=np.int64)
        self._file_starts = np.zeros(0, dtype=np.int64)  # each file's first row
        self._stats: dict[int, str] = {}  # per file: its identity, taken once per process
        self._length = -1
        self._chunks: list[Any] | None = None
        self._lock = threading.Lock()
        self._open()  # checks the type now, in the caller's process
        self._length = len(self.row_map) if self.row_map is not None else int(self._starts[-1])

    @classmethod
    def from_files(
        cls, files: Sequence[str], name: str, parts: Sequence[tuple[str, int]] = ()
    ) -> ArrowColumn:
        """The column ``name`` of uncompressed Arrow IPC files (file or stream format), in
        order, memory-mapped."""
        return cls(name, files=files, parts=parts)

    @classmethod
    def from_table(
        cls,
        table: Any,
        name: str,
        row_map: np.ndarray | None = None,
        parts: Sequence[tuple[str, int]] = (),
    ) -> ArrowColumn:
        """The column ``name`` of ``table`` (a pyarrow Table, or anything with
        ``.column(name)`` returning a ChunkedArray), rows optionally through ``row_map``."""
        return cls(name, table=table, row_map=row_map, parts=parts)

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        where = f"{len(self.files)} Arrow files" if self.files else "a table in memory"
        return f"ArrowColumn({self.name!r}, {self._length} rows, {where})"

    # ----------------------------------------------------------------------------- access

    def get(self, row: int) -> tuple[bytes | None, str | None]:
        """The image bytes and the path of ``row`` (either may be None)."""
        chunks = self._open()
        physical = int(self.row_map[row]) if self.row_map is not None else row
        c = int(np.searchsorted(self._starts, physical, side="right")) - 1
        value = chunks[c][physical - int(self._starts[c])]
        if not value.is_valid:
            return None, None
        if hasattr(value, "keys"):  # a {bytes, path} struct
            data, path = value.get("bytes"), value.get("path")
            return (
                None if data is None else data.as_py(),
                None if path is None else path.as_py(),
            )
        return value.as_py(), None

    def identity(self, row: int) -> bytes | None:
        """Where ``row``'s image bytes are stored, for a cache's key, without reading
        them: the Arrow file's path, size and modification time (taken once per process)
        and the row in it. None for a table in memory, or a cell whose bytes are null
        (its image is read from the cell's path)."""
        if not self.files:
            return None
        chunks = self._open()
        physical = int(self.row_map[row]) if self.row_map is not None else row
        c = int(np.searchsorted(self._starts, physical, side="right")) - 1
        value = chunks[c][physical - int(self._starts[c])]
        if not value.is_valid or (hasattr(value, "keys") and not value.get("bytes").is_valid):
            return None
        k = int(np.searchsorted(self._file_starts, physical, side="right")) - 1
        stat = self._stats.get(k)
        if stat is None:
            info = os.stat(self.files[k])
            path = os.path.abspath(self.files[k])
            stat = self._stats[k] = f"{path}\0{info.st_size}\0{info.st_mtime_ns}"
        return f"arrow\0{stat}\0{self.name}\0{physical - int(self._file_starts[k])}".encode(
            "utf-8", "surrogateescape"
        )

    def describe(self, row: int) -> str:
        """Where ``row`` is stored: ``file 'b.parquet', row 17 of that file``, for messages."""
        physical = int(self.row_map[row]) if self.row_map is not None else row
        if not self.parts:
            return f"table row {row}"
        starts = [start for _, start in self.parts]
        k = int(np.searchsorted(starts, physical, side="right")) - 1
        label, start = self.parts[k]
        return f"file {label!r}, row {physical - start} of that file"

    def _open(self) -> list[Any]:
        chunks = self._chunks
        if chunks is not None:
            return chunks
        with self._lock:
            if self._chunks is None:
                if self.files:
                    columns = [_mapped_column(f, self.name) for f in self.files]
                    rows = [len(column) for column in columns]
                    self._file_starts = np.concatenate([[0], np.cumsum(rows[:-1])]).astype(np.int64)
                    arrays = [c for column in columns for c in column.chunks]
                else:
                    arrays = list(self.table.column(self.name).chunks)
                for array in arrays[:1]:
                    check_image_type(array.type, self.name)
                lengths = [len(a) for a in arrays]
                self._starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
                self._chunks = arrays
            return self._chunks


def check_image_type(arrow_type: Any, column: str, where: str = "") -> None:
    """Refuses a column that holds neither image bytes nor ``{bytes, path}`` structs."""
    pa = optional_import("pyarrow", "Reading images stored in Arrow or Parquet")
    binary = (pa.binary(), pa.large_binary())
    if arrow_type in binary:
        return
    if pa.types.is_struct(arrow_type):
        names = {
            arrow_type.field(i).name: arrow_type.field(i).type for i in range(arrow_type.num_fields)
        }
        # A bytes field of type null: every cell falls back to its path.
        if names.get("bytes") in (*binary, pa.null()) and names.get("path", pa.string()) in (
            pa.string(),
            pa.large_string(),
        ):
            return
    raise TypeError(
        f"Column {column!r}{where} holds {arrow_type}, which is not an image column: it must "
        "hold encoded image bytes (binary), {bytes: binary, path: string} structs (the "
        "Hugging Face datasets.Image() storage) or image paths (string)."
    )


def _mapped_column(path: str, name: str) -> Any:
    """Column ``name`` of the Arrow IPC file ``path``, zero-copy from a memory map."""
    pa = optional_import("pyarrow", "Reading images stored in Arrow files")
    # All columns: reading a subset (IpcReadOptions.included_fields) copies the buffers,
    # where reading everything from a memory map copies none.
    return open_ipc(pa.memory_map(path)).read_all().column(name)


def open_ipc(mapped: Any, column: str | None = None) -> Any:
    """A reader of the Arrow IPC file or stream ``mapped`` (told apart by the magic),
    reading only ``column`` if given (other columns are neither read nor decompressed,
    but that column is copied out of the map, not read in place)."""
    ipc = optional_import("pyarrow.ipc", "Reading Arrow files")
    is_file = mapped.read(len(IPC_FILE_MAGIC)) == IPC_FILE_MAGIC
    mapped.seek(0)
    options = None
    if column is not None:
        schema = (ipc.open_file(mapped) if is_file else ipc.open_stream(mapped)).schema
        mapped.seek(0)
        options = ipc.IpcReadOptions(included_fields=[schema.get_field_index(column)])
    if is_file:
        return ipc.open_file(mapped, options=options)
    return ipc.open_stream(mapped, options=options)
