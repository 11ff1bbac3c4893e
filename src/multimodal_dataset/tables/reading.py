"""`read_table`: whatever the user calls a table, as a `Table`.

A table may be a CSV/TSV file, a Parquet file, an Arrow IPC/Feather file, a folder or a
glob or a list of Parquet or Arrow files (one table, in file order: sorted for a folder or
a glob), a pandas DataFrame, a pyarrow Table, or a Hugging Face ``datasets.Dataset`` (for
example from ``load_from_disk``, or one split of a ``DatasetDict``).
"""

from __future__ import annotations

import csv
import glob
import io
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from multimodal_dataset.io.files import check_regular_file
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.urls import is_remote, local_path, parent
from multimodal_dataset.sources.arrays import class_names
from multimodal_dataset.tables.arrow_tables import ArrowTable, FileTable
from multimodal_dataset.tables.shards import ShardTable
from multimodal_dataset.tables.table import MemoryTable, Table

#: File name endings of each format read.
FORMATS = {
    "csv": (".csv", ".txt"),
    "tsv": (".tsv",),
    "parquet": (".parquet", ".pq"),
    "arrow": (".arrow", ".feather", ".ipc"),
    "tar": (".tar", ".tar.gz", ".tgz"),
}
_WHAT = (
    "a .csv/.tsv file; a .parquet, .arrow or .feather file, a folder, a glob or a list of "
    "them; WebDataset .tar shards (a list, a glob or 'shards/{00000..00099}.tar'); a pandas "
    "DataFrame; a pyarrow Table; or a Hugging Face datasets.Dataset"
)


def read_table(
    source: Any,
    cache_dir: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Table:
    """The `Table` of ``source`` (see the module docstring for what a source may be).

    CSV files are read as UTF-8 with Python's ``csv`` module (no extra dependency); bytes
    that are not UTF-8 are kept (as surrogate escapes) so the error can name the row and
    column. Parquet and Arrow need ``pyarrow``; image bytes in them are not read here.

    Any path may be an fsspec URL (``s3://bucket/train.parquet``), read through the
    protocol's file system with ``storage_options`` (see ``storage``); the table's image
    paths are then relative to its URL.

    Args:
        source: The table.
        cache_dir: Where Parquet image columns are converted to Arrow (see `from_table`).
        storage_options: Options of the file system that reads URLs (credentials,
            ``endpoint_url``), as in pandas.
    """
    if isinstance(source, Table):
        return source
    storage = Storage(storage_options)
    table = _read(source, cache_dir, storage)
    if table.storage is None:
        table.storage = storage
    return table


def _read(source: Any, cache_dir: Any, storage: Storage) -> Table:
    if isinstance(source, (str, os.PathLike)) or _is_path_list(source):
        return _read_files(_files(source, storage), cache_dir, source, storage)
    kinds = class_names(source)
    if "pandas.DataFrame" in kinds:
        return MemoryTable({c: source[c].to_numpy() for c in source.columns}, None, "the DataFrame")
    if "pyarrow.Table" in kinds:
        return ArrowTable(source, None, "the pyarrow Table")
    if "datasets.DatasetDict" in kinds or "datasets.IterableDatasetDict" in kinds:
        splits = ", ".join(map(repr, source))
        first = next(iter(source), "train")
        raise TypeError(
            f"from_table got a DatasetDict with the splits {splits}; pass one split, e.g. "
            f"from_table(dataset[{first!r}], validation=dataset['validation'], ...)."
        )
    if "datasets.IterableDataset" in kinds:
        raise TypeError(
            "from_table got a streaming datasets.IterableDataset, which has no random "
            "access, so no exact per-sample shuffle. Load it with streaming=False (it is "
            "memory-mapped, not loaded into memory), or save it with .to_parquet(path)."
        )
    if "datasets.Dataset" in kinds:
        indices = getattr(source, "_indices", None)
        row_map = None if indices is None else np.asarray(indices.column(0).to_numpy(), np.int64)
        return ArrowTable(source.data, None, "the Hugging Face dataset", row_map)
    raise TypeError(f"from_table takes {_WHAT}; got {type(source).__name__}.")


def _is_path_list(source: Any) -> bool:
    return isinstance(source, (list, tuple)) and all(
        isinstance(s, (str, os.PathLike)) for s in source
    )


def _files(source: Any, storage: Storage) -> list[str]:
    if not isinstance(source, (str, os.PathLike)):
        if not source:
            raise ValueError(f"from_table got an empty list of files; it takes {_WHAT}.")
        return [local_path(os.fspath(s)) for s in source]
    path = local_path(os.fspath(source))
    if is_remote(path):
        return _remote_files(path, storage)
    if os.path.isdir(path):
        endings = FORMATS["parquet"] + FORMATS["arrow"] + FORMATS["tar"]
        found = sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if name.lower().endswith(endings) and os.path.isfile(os.path.join(path, name))
        )
        if not found:
            raise ValueError(
                f"The folder {path!r} holds no .parquet, .arrow or .tar files; it reads a "
                "folder of them as one table. Pass a file or a glob instead."
            )
        return found
    if "{" in path and "}" in path:
        expanded = expand_braces(path)
        missing = [p for p in expanded if not os.path.exists(p)]
        if missing:
            raise FileNotFoundError(
                f"The pattern {path!r} names {len(expanded)} files, of which {len(missing)} "
                f"do not exist, the first {missing[0]!r}. Check the folder and the range."
            )
        return expanded
    if glob.has_magic(path):
        found = sorted(glob.glob(path))
        if not found:
            raise FileNotFoundError(
                f"The pattern {path!r} matches no file (from the folder {os.getcwd()!r}). "
                "Check the folder and the file names."
            )
        return found
    return [path]


def _remote_files(url: str, storage: Storage) -> list[str]:
    """The objects a URL names: itself, a brace pattern's, a glob's, or a folder's."""
    if "{" in url and "}" in url:
        return expand_braces(url)  # a missing one is named when it is read
    if glob.has_magic(url):
        found = storage.glob(url)
        if not found:
            raise FileNotFoundError(
                f"The pattern {url!r} matches no object. Check the bucket, the folder and "
                "the file names (and storage_options for the store)."
            )
        return found
    if url.lower().endswith(tuple(e for endings in FORMATS.values() for e in endings)):
        return [url]
    listed = storage.list_files(url)
    if listed is None:
        return [url]
    endings = FORMATS["parquet"] + FORMATS["arrow"] + FORMATS["tar"]
    found = [u for u in listed if u.lower().endswith(endings)]
    if not found:
        raise ValueError(
            f"The folder {url!r} holds no .parquet, .arrow or .tar objects; it reads a folder "
            "of them as one table. Pass a file or a glob instead."
        )
    return found


def expand_braces(pattern: str) -> list[str]:
    """WebDataset's brace notation: ``"s/{00000..00002}.tar"`` -> ``s/00000.tar`` ...
    ``s/00002.tar`` (zero padding kept), ``"{a,b}.tar"`` -> ``a.tar, b.tar``; several
    braces multiply."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    numbers = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numbers:
        first, last = numbers.groups()
        if int(last) < int(first):
            raise ValueError(f"The range {{{body}}} in {pattern!r} runs backwards.")
        width = len(first) if first.startswith("0") else 0
        choices = [str(i).zfill(width) for i in range(int(first), int(last) + 1)]
    else:
        choices = body.split(",")
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [expanded for c in choices for expanded in expand_braces(head + c + tail)]


def _format_of(path: str) -> str:
    lowered = path.lower()
    for name, endings in FORMATS.items():
        if lowered.endswith(endings):
            return name
    raise ValueError(f"Cannot read {path!r}: from_table takes {_WHAT}.")


def _read_files(files: Sequence[str], cache_dir: Any, source: Any, storage: Storage) -> Table:
    formats = {path: _format_of(path) for path in files}
    kinds = sorted(set(formats.values()))
    if len(kinds) > 1:
        by_kind = "; ".join(
            f"{kind}: {', '.join(repr(p) for p, k in formats.items() if k == kind)}"
            for kind in kinds
        )
        raise ValueError(
            f"The files of one table must share a format; got {by_kind}. Pass the files of "
            "one format (convert the others), or read each and concatenate them yourself."
        )
    for path in files:
        if not is_remote(path):
            check_regular_file(path, "a table file (.csv, .tsv, .parquet, .arrow, .feather)")
    kind = kinds[0]
    if kind in ("csv", "tsv"):
        if len(files) > 1:
            raise ValueError(
                f"from_table reads one CSV file at a time; got {len(files)}. Concatenate them "
                "(pandas.concat) or convert them to Parquet."
            )
        path = files[0]
        delimiter = "\t" if kind == "tsv" else ","
        if is_remote(path):
            with storage.open(path) as raw:
                columns = _read_csv(_text(raw), path, delimiter)
        else:
            with open(path, "rb") as raw:
                columns = _read_csv(_text(raw), path, delimiter)
        return MemoryTable(columns, parent(path), f"table {path!r}")
    if kind == "tar":
        shards = f"{len(files)} shard{'s' if len(files) > 1 else ''}"
        return ShardTable(
            files,
            f"the {shards} {os.fspath(source)!r}"
            if isinstance(source, (str, os.PathLike))
            else f"the {shards}",
            cache_dir,
            storage=storage,
        )
    if len(files) == 1:
        name = f"table {files[0]!r}"
    elif isinstance(source, (str, os.PathLike)):
        name = f"table {os.fspath(source)!r} ({len(files)} files)"
    else:
        name = f"the table of {len(files)} files"
    return FileTable(files, kind, name, cache_dir, storage)


def _text(raw: Any) -> io.TextIOWrapper:
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which is not a name.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _read_csv(f: io.TextIOWrapper, path: str, delimiter: str) -> dict[str, np.ndarray]:
    with f:
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
