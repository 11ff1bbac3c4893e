"""Image columns made memory-mappable: a Parquet (or compressed Arrow) image column is
converted once into an uncompressed Arrow IPC file in a cache folder, as Hugging Face
``datasets`` does, so that any sample's bytes can be read without decoding its neighbours.

Why: a per-sample shuffle reads rows in random order. Compressed Parquet decodes whole
column chunks of a row group, so a batch of 32 random rows would decode up to 32 row
groups (thousands of images) to use 32. An uncompressed Arrow file is read in place
through a memory map: a sample costs its own bytes. The conversion is one sequential pass
over the image column (memory: one row group's worth), written to a temporary file and
renamed, keyed by the source file's path, size and modification time and the column, so
it happens once per file and is redone when the file changes.

The files are kept in the ``arrow/`` folder of the cache (see ``tables.cache``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import PurePosixPath
from typing import Any

from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset.io.arrow_column import open_ipc
from multimodal_dataset.io.cache_folder import cached_file, write_atomically
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.urls import is_remote

logger = logging.getLogger("multimodal_dataset")

#: Bumped when the layout of cache files changes, so old ones are not reused.
CACHE_VERSION = 1
#: A remote file's image column is copied reading blocks of this size.
REMOTE_BLOCK_BYTES = 16 * 2**20


def mappable_column_file(
    path: str,
    column: str,
    file_format: str,
    rows: int,
    cache_dir: str | os.PathLike[str] | None,
    storage: Storage | None = None,
) -> str:
    """An uncompressed Arrow IPC file holding ``column`` of ``path``, to memory-map.

    An uncompressed Arrow file is its own answer; Parquet and compressed Arrow files are
    converted into the cache folder once.

    Args:
        path: The table file.
        column: The image column.
        file_format: ``"parquet"`` or ``"arrow"``.
        rows: The file's row count (a cache file with another count is rebuilt).
        cache_dir: See ``tables.cache``.
        storage: Reads a file that is a URL: its column is always copied into the cache
            (a memory map needs a local file), once.
    """
    remote = is_remote(path)
    if file_format == "arrow" and not remote and not is_compressed_arrow(path, column):
        return path
    stem = PurePosixPath(path).name.split(".")[0][:60]
    target, reusable = cached_file(
        path,
        "arrow",
        f"{stem}.{_safe(column)}.arrow",
        column,
        CACHE_VERSION,
        cache_dir=cache_dir,
        storage=storage,
    )
    if reusable and target.is_file() and _rows_of(str(target)) == rows:
        return str(target)
    started = time.perf_counter()
    write_atomically(
        target, lambda temporary: _convert(path, column, file_format, temporary, storage)
    )
    logger.info(
        "Converted image column %r of %s to memory-mappable Arrow %s in %.1f s (once per file).",
        column,
        path,
        target,
        time.perf_counter() - started,
    )
    return str(target)


def is_compressed_arrow(path: str, column: str) -> bool:
    """Whether reading the first record batch of an Arrow IPC file allocates memory for
    ``column``: its buffers are compressed (Feather's default), so a memory map cannot
    serve them in place."""
    pa = optional_import("pyarrow", "Reading Arrow files")
    with pa.memory_map(path) as mapped:
        reader = open_ipc(mapped)  # every column: a subset would be copied anyway
        before = pa.total_allocated_bytes()
        batch = _first_batch(reader)
        if batch is None:
            return False
        copied = pa.total_allocated_bytes() - before
        return bool(copied > 0 and copied >= batch.column(column).nbytes // 2)


def _convert(
    path: str, column: str, file_format: str, destination: str, storage: Storage | None
) -> None:
    pa = optional_import("pyarrow", "Converting image columns")
    with contextlib.ExitStack() as stack:
        source: Any = path
        if is_remote(path):
            remote = (storage or Storage()).open(path, block_size=REMOTE_BLOCK_BYTES)
            source = stack.enter_context(remote)
        _write_column(source, column, file_format, destination)
    pa.default_memory_pool().release_unused()  # give the row groups' memory back


def _write_column(source: Any, column: str, file_format: str, destination: str) -> None:
    pa = optional_import("pyarrow", "Converting image columns")
    ipc = optional_import("pyarrow.ipc", "Converting image columns")
    if file_format == "parquet":
        pq = optional_import("pyarrow.parquet", "Reading Parquet")
        parquet = pq.ParquetFile(source)
        schema = pa.schema([parquet.schema_arrow.field(column)])
        # One row group at a time: what Parquet decompresses as a unit, and all it holds.
        batches: Any = (
            batch
            for group in range(parquet.num_row_groups)
            for batch in parquet.read_row_group(group, columns=[column]).to_batches()
        )
    else:
        mapped = pa.memory_map(source) if isinstance(source, str) else source
        reader = open_ipc(mapped, column)
        schema = pa.schema([reader.schema.field(column)])
        batches = _batches(reader)
    with pa.OSFile(destination, "wb") as sink, ipc.new_file(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(pa.record_batch([batch.column(column)], schema=schema))
            del batch


def _rows_of(path: str) -> int:
    pa = optional_import("pyarrow", "Reading Arrow files")
    try:
        with pa.memory_map(path) as mapped:
            reader = open_ipc(mapped)
            return sum(len(batch) for batch in _batches(reader))
    except (OSError, pa.ArrowInvalid):
        return -1  # unreadable (a crash mid-write cannot leave one: writes are renamed)


def _first_batch(reader: Any) -> Any:
    if hasattr(reader, "get_batch"):
        return reader.get_batch(0) if reader.num_record_batches else None
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


def _batches(reader: Any) -> Any:
    if hasattr(reader, "get_batch"):
        return (reader.get_batch(i) for i in range(reader.num_record_batches))
    return iter(reader)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
