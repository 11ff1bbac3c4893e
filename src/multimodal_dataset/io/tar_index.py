"""The index of a tar shard, as columns: one row per sample (its WebDataset key) and, per
member kind (``jpg``, ``txt``, ``json``), the data offset and size of the sample's member
and whether it is gzip-compressed. Small members (captions, classes, JSON) are copied into
the index too, in the same pass.

One pass over the tar headers writes the index as an uncompressed Arrow IPC file in the
cache folder; later runs memory-map it, so opening a shard reads no member and builds no
Python object per sample, and a sample's image is one ``pread`` away. WebDataset shards
thereby get the same exact per-sample order as every other source instead of streaming
order.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tarfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import numpy as np

from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset._utils.processes import spawn_context
from multimodal_dataset.io.cache_folder import cached_file, write_atomically
from multimodal_dataset.io.files import check_regular_file
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.urls import is_remote

#: Bumped when the index layout changes.
INDEX_VERSION = 3
#: A remote shard's headers are read in blocks of this size.
REMOTE_BLOCK_BYTES = 16 * 2**20
#: Member kinds copied into the index (the last part of the extension, as the webdataset
#: library's decoders match them): text, class ids and JSON.
SMALL_KINDS = frozenset(
    {"txt", "text", "transcript", "cls", "cls2", "class", "count", "index", "inx", "id", "json"}
)
#: A small member larger than this stays in the shard and is read by offset.
SMALL_MAX_BYTES = 1 << 20
#: The schema metadata key of an index file.
_METADATA = b"multimodal_dataset.tar_index"


def is_small(kind: str) -> bool:
    """Whether members of ``kind`` (``"txt"``, ``"seg.json"``) are copied into the index."""
    return kind.rpartition(".")[2] in SMALL_KINDS


def split_key(name: str) -> tuple[str, str]:
    """WebDataset's key rule: ``("dir/000123", "seg.jpg")`` for ``"dir/000123.seg.jpg"``:
    the key is everything before the first dot of the file name, within its folder."""
    folder, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), (extension if dot else "")


@dataclass(frozen=True)
class ShardIndex:
    """A shard's index file and what it holds; its columns are read by memory-mapping it.

    Attributes:
        shard: The shard (a path or URL).
        file: The index's Arrow IPC file.
        samples: The number of samples (keys with at least one member).
        kinds: The member kinds, lower case and without ``.gz``, in first-seen order
            (WebDataset's conventions: extensions match whatever their case, and
            ``000123.txt.gz`` is the ``txt`` member, gzip-compressed).
        gzipped: The kinds of which some member is gzip-compressed.
    """

    shard: str
    file: str
    samples: int
    kinds: tuple[str, ...]
    gzipped: frozenset[str]

    @contextlib.contextmanager
    def columns(self) -> Iterator[IndexColumns]:
        """The index's columns, memory-mapped while the block runs."""
        pa = optional_import("pyarrow", "Reading WebDataset shards")
        with pa.memory_map(self.file) as source:
            yield IndexColumns(pa.ipc.open_file(source).read_all())

    def key(self, sample: int) -> str:
        """The key of the shard's ``sample``."""
        with self.columns() as columns:
            return columns.key(sample)


class IndexColumns:
    """The columns of one shard's index (see `ShardIndex.columns`)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def _column(self, name: str) -> Any:
        return self.table.column(name).combine_chunks()  # one chunk: no copy

    def key(self, sample: int) -> str:
        return str(self.table.column("key")[sample].as_py())

    def members(self, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per sample: the offset of its ``kind`` member's data (-1: none), its size and
        whether it is gzipped; views of the mapped file."""
        offsets = self._column(f"offset:{kind}").to_numpy()
        sizes = self._column(f"size:{kind}").to_numpy()
        gzipped = self._column(f"gzip:{kind}").to_numpy().view(bool)
        return offsets, sizes, gzipped

    def data(self, kind: str) -> Any:
        """Per sample, the bytes of its ``kind`` member as stored (gzipped ones
        compressed) as a pyarrow binary array, null where it has none or the member is
        larger than `SMALL_MAX_BYTES`; None for a kind that is not copied."""
        name = f"data:{kind}"
        return self._column(name) if name in self.table.column_names else None


#: Local shards that need indexing are indexed in processes from this many bytes in all.
PARALLEL_MIN_BYTES = 64 * 2**20
#: Remote shards that need indexing are read this many at a time.
REMOTE_THREADS = 8


def shard_indexes(
    paths: Sequence[str],
    cache_dir: str | os.PathLike[str] | None = None,
    storage: Storage | None = None,
) -> list[ShardIndex]:
    """The indexes of the shards ``paths`` (see `shard_index`). Those not in the cache
    are indexed concurrently: local shards in spawned processes, one per core, when
    they are large (reading headers is Python work); remote ones in threads of this
    process (reading a shard is mostly waiting on the network, and a store may live in
    this process alone, as ``memory://`` does)."""
    storage = storage or Storage()
    found = [_cached(path, cache_dir, storage) for path in paths]
    todo = [path for path, index in zip(paths, found, strict=True) if index is None]
    local = [p for p in todo if not is_remote(p) and os.path.isfile(p)]
    remote = [p for p in todo if is_remote(p)]
    made: dict[str, ShardIndex] = {}
    processes = min(len(local), os.cpu_count() or 1)
    if processes > 1 and sum(map(os.path.getsize, local)) >= PARALLEL_MIN_BYTES:
        context = spawn_context()  # spawned: safe beside any backend's threads
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            done = pool.map(shard_index, local, [cache_dir] * len(local), [storage] * len(local))
            made.update(zip(local, done, strict=True))
    if len(remote) > 1:
        with ThreadPoolExecutor(min(len(remote), REMOTE_THREADS)) as threads:
            done = threads.map(lambda path: shard_index(path, cache_dir, storage), remote)
            made.update(zip(remote, done, strict=True))
    return [
        index if index is not None else made.get(path) or shard_index(path, cache_dir, storage)
        for path, index in zip(paths, found, strict=True)
    ]


def _cached(
    path: str, cache_dir: str | os.PathLike[str] | None, storage: Storage
) -> ShardIndex | None:
    """The index of ``path`` in the cache, if it is there and may be reused."""
    if not is_remote(path) and not os.path.isfile(path):
        return None  # shard_index names the problem
    cached, reusable = _index_file(path, cache_dir, storage)
    return _opened(path, str(cached)) if reusable and cached.is_file() else None


def _index_file(
    path: str, cache_dir: str | os.PathLike[str] | None, storage: Storage
) -> tuple[Any, bool]:
    return cached_file(
        path,
        "tar_index",
        f"{PurePosixPath(path).name[:60]}.arrow",
        INDEX_VERSION,
        cache_dir=cache_dir,
        storage=storage,
    )


def shard_index(
    path: str, cache_dir: str | os.PathLike[str] | None = None, storage: Storage | None = None
) -> ShardIndex:
    """The index of the tar shard ``path``, written to the cache folder once.

    A shard on remote storage (a URL, read through ``storage``) is read once from start
    to end in large blocks (its headers lie between its members), not member by member.

    Raises:
        ValueError: For a compressed, truncated or corrupt shard, a link out of it, or a
            key held twice, naming the shard and the member.
    """
    remote = is_remote(path)
    if not remote:
        check_regular_file(path, "a tar shard")
    storage = storage or Storage()
    cached, reusable = _index_file(path, cache_dir, storage)
    if reusable and cached.is_file():
        found = _opened(path, str(cached))
        if found is not None:
            return found
    if remote:
        size = storage.identity(path)[0]

        def index() -> Any:
            with storage.open(path, block_size=REMOTE_BLOCK_BYTES) as f:
                return _read_headers(f, path, size, remote=True)

        # The headers are read through a file object: a failure mid-way (a server error,
        # a dropped connection) is retried like any read and named with the URL.
        table = storage.retrying(path, index)
    else:
        with open(path, "rb") as f:
            table = _read_headers(f, path, os.stat(path).st_size)

    def write(temporary: str) -> None:
        pa = optional_import("pyarrow", "Reading WebDataset shards")
        with pa.ipc.new_file(temporary, table.schema) as writer:
            writer.write_table(table)

    write_atomically(cached, write)
    opened = _opened(path, str(cached))
    assert opened is not None
    return opened


def _opened(shard: str, file: str) -> ShardIndex | None:
    """The index in ``file`` (a regular file, of this version), or None to index again."""
    pa = optional_import("pyarrow", "Reading WebDataset shards")
    try:
        check_regular_file(file, "a shard index")
        with pa.memory_map(file) as source:
            schema = pa.ipc.open_file(source).schema
        about = json.loads(schema.metadata[_METADATA])
        if about["version"] != INDEX_VERSION:
            return None
        return ShardIndex(
            shard,
            file,
            int(about["samples"]),
            tuple(str(k) for k in about["kinds"]),
            frozenset(str(k) for k in about["gzipped"]),
        )
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None  # unreadable or from another version: index again


def _read_headers(f: BinaryIO, path: str, file_size: int, remote: bool = False) -> Any:
    try:
        return _Indexer(path).read(f, file_size)
    except ValueError as error:
        if remote and "Cannot seek streaming" in str(error):
            raise ValueError(
                f"Shard {path!r} cannot be indexed: the server does not support range "
                "requests (it sends no Content-Length or ignores Range), so members cannot "
                "be read by offset. Serve the shards from a server or store that does "
                "(S3, GCS, nginx, Python's http.server), or copy them to a local disk."
            ) from None
        raise


#: What one member of a shard is, as far as the index cares.
Entry = tuple[str, str, int, int, str, "bytes | None"]  # name, kind, offset, size, link, data


class _Indexer:
    """One pass over a shard's headers: its samples' members, grouped by key."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.keys: list[str] = []
        # kind -> per member: sample, offset, size, gzipped, data (small kinds)
        self.kinds: dict[str, tuple[list[int], list[int], list[int], list[bool], list[Any]]] = {}
        self.last_key: str | None = None
        self.first: dict[str, int] = {}  # key -> its sample
        self.seen: set[str] = set()  # the kinds of the current key

    def read(self, f: BinaryIO, file_size: int) -> Any:
        magic = f.read(6)
        if magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00":
            raise ValueError(
                f"Shard {self.path!r} is compressed; members of a compressed tar cannot be "
                "read by offset. Decompress it (gunzip), or write the shards uncompressed "
                "(.tar), as WebDataset and img2dataset do by default."
            )
        try:
            entries, end = _scan(_Blocks(f), self.path, file_size)
        except _Unusual:  # a header the scanner leaves to the tarfile module
            entries, end = self._tarfile_entries(f, file_size)
        regular: dict[str, tuple[int, int, bytes | None]] = {}
        last = None
        for name, kind, offset, size, link, data in entries:
            if kind == "file":
                where = regular[name] = (offset, size, data)
            elif kind == "link":  # a hard link: the data of an earlier member
                if link not in regular:
                    raise ValueError(
                        f"Shard {self.path!r}: member {name!r} is a hard link to {link!r}, "
                        "which is not a file earlier in the shard. Write the shard again "
                        "without links (tar --hard-dereference)."
                    )
                where = regular[link]
            elif kind == "symlink":
                raise ValueError(
                    f"Shard {self.path!r}: member {name!r} is a symbolic link (to {link!r}); "
                    "a shard's samples must be files inside it. Write the shard again with "
                    "the files themselves (tar --dereference)."
                )
            else:
                continue
            self._add(name, *where)
            last = name
        # An archive ends with zero blocks: without one, the file was cut after a member
        # (an interrupted copy) and the samples after it are lost.
        f.seek(end)
        marker = f.read(tarfile.BLOCKSIZE)
        if len(marker) < tarfile.BLOCKSIZE or marker.count(0) != tarfile.BLOCKSIZE:
            after = f" after member {last!r}" if last is not None else ""
            raise ValueError(
                f"Shard {self.path!r} is truncated: it ends at byte {end:,}{after} without "
                "the end-of-archive marker, so the members that followed are missing (an "
                "interrupted copy or download). Copy or write the shard again."
            )
        return self._table()

    def _tarfile_entries(self, f: BinaryIO, file_size: int) -> tuple[list[Entry], int]:
        """The entries as the tarfile module reads them (every format it knows)."""
        f.seek(0)
        entries: list[Entry] = []
        info = None
        try:
            with tarfile.open(fileobj=f, mode="r:") as archive:
                for info in archive:
                    _check_inside(self.path, info.name, info.offset_data, info.size, file_size)
                    kind = (
                        "file"
                        if info.isfile()
                        else "link"
                        if info.islnk()
                        else "symlink"
                        if info.issym()
                        else "other"
                    )
                    data = None
                    if kind == "file" and _wanted(info.name, info.size):
                        data = _read_at(f, info.offset_data, info.size)
                    entries.append(
                        (info.name, kind, info.offset_data, info.size, info.linkname, data)
                    )
                end = archive.offset
        except (tarfile.TarError, EOFError, OSError) as error:
            if isinstance(error, OSError) and error.errno != errno.EINVAL:
                raise  # a failed read (remote: retried by the caller), not a bad archive
            after = f" after member {info.name!r}" if info is not None else ""
            raise ValueError(
                f"Shard {self.path!r} is not a readable tar file{after} ({error}); it is "
                "corrupt or truncated. Write it again."
            ) from None
        return entries, end

    def _add(self, name: str, offset: int, size: int, data: bytes | None) -> None:
        key, extension = split_key(name)
        if not extension:
            return  # not part of a sample (WebDataset skips these too)
        extension = extension.lower()
        gzipped = extension.endswith(".gz")
        kind = extension.removesuffix(".gz")
        if key != self.last_key:
            if key in self.first:
                self._twice(key, name)
            self.first[key] = len(self.keys)
            self.keys.append(key)
            self.last_key = key
            self.seen = set()
        elif kind in self.seen:
            self._twice(key, name)
        self.seen.add(kind)
        samples, offsets, sizes, gz, cells = self.kinds.setdefault(kind, ([], [], [], [], []))
        samples.append(len(self.keys) - 1)
        offsets.append(offset)
        sizes.append(size)
        gz.append(gzipped)
        if is_small(kind):
            cells.append(data)

    def _twice(self, key: str, name: str) -> None:
        raise ValueError(
            f"Shard {self.path!r} holds the key {key!r} twice (member {name!r} again, or "
            "apart from the key's other members): WebDataset keys must be unique and their "
            "members adjacent in a shard. Write the shard again with unique keys."
        )

    def _table(self) -> Any:
        pa = optional_import("pyarrow", "Reading WebDataset shards")
        count = len(self.keys)
        columns: dict[str, Any] = {"key": pa.array(self.keys, pa.string())}
        for kind, (samples, offsets, sizes, gzipped, data) in self.kinds.items():
            at = np.asarray(samples, np.int64)
            for name, values, fill, dtype in (
                ("offset", offsets, -1, np.int64),
                ("size", sizes, 0, np.int64),
                ("gzip", gzipped, 0, np.int8),
            ):
                column = np.full(count, fill, dtype)
                column[at] = values
                columns[f"{name}:{kind}"] = pa.array(column)
            if is_small(kind):
                cells: list[Any] = [None] * count
                for sample, value in zip(samples, data, strict=True):
                    cells[sample] = value
                columns[f"data:{kind}"] = pa.array(cells, pa.large_binary())
        about = {
            "version": INDEX_VERSION,
            "samples": count,
            "kinds": list(self.kinds),
            "gzipped": [kind for kind, values in self.kinds.items() if any(values[3])],
        }
        return pa.table(columns).replace_schema_metadata({_METADATA: json.dumps(about)})


def _wanted(name: str, size: int) -> bool:
    """Whether member ``name`` is copied into the index (a small kind, small enough)."""
    kind = split_key(name)[1].lower().removesuffix(".gz")
    return bool(kind) and is_small(kind) and size <= SMALL_MAX_BYTES


def _check_inside(path: str, name: str, offset: int, size: int, file_size: int) -> None:
    if offset + max(size, 0) > file_size:
        raise ValueError(
            f"Shard {path!r} is truncated or corrupt: member {name!r} needs {size:,} bytes at "
            f"offset {offset:,}, but the file is {file_size:,} bytes. Write it again."
        )


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` of ``f``, leaving its position as it was."""
    position = f.tell()
    f.seek(offset)
    data = f.read(size)
    f.seek(position)
    return data


# ------------------------------------------------------------- the fast header scanner


class _Unusual(Exception):
    """A header the scanner does not read (GNU long names, base-256 numbers, sparse
    files, a bad checksum, an empty file): the tarfile module reads the shard instead,
    with its messages."""


#: Type flags the scanner reads: regular files, links, and entries without data.
_FILES, _LINK, _SYMLINK = (b"0", b"\0", b"7"), b"1", b"2"
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")
_BLOCK = tarfile.BLOCKSIZE


class _Blocks:
    """Forward reads of a file in blocks (a local file, or a remote object read through
    its own larger block cache): a block holds the headers and small members of many
    small samples, or one header of a large image, whose data is skipped."""

    def __init__(self, f: BinaryIO, size: int = 64 * 2**10) -> None:
        self.f, self.size = f, size
        self.start, self.buffer = 0, b""

    def at(self, offset: int, size: int) -> bytes:
        end = offset + size
        if offset < self.start or end > self.start + len(self.buffer):
            self.f.seek(offset)
            self.buffer = self.f.read(max(self.size, size))
            self.start = offset
        return self.buffer[offset - self.start : end - self.start]


def _scan(blocks: _Blocks, path: str, file_size: int) -> tuple[list[Entry], int]:
    """The members of an ustar or pax archive (what Python's tarfile and the webdataset
    library write), read straight from the headers, ten times faster than the tarfile
    module: each entry, with the data of the small members, and where the archive ends.

    Raises:
        _Unusual: For anything else, left to the tarfile module.
    """
    entries: list[Entry] = []
    headers: list[bytes] = []
    offset = 0
    pax: dict[str, str] = {}
    while True:
        header = blocks.at(offset, _BLOCK)
        if len(header) < _BLOCK or (not header[0] and header.count(0) == _BLOCK):
            if offset == 0 or pax:
                raise _Unusual
            _check_sums(headers)
            return entries, offset  # the end (checked by the caller)
        headers.append(header)
        flag = header[156:157]
        try:
            size = int(header[124:135], 8)  # 11 octal digits, as tar writes them
        except ValueError:
            size = _number(header[124:136])
        data = offset + _BLOCK
        if flag == b"x":  # a pax header: fields of the next entry
            pax = _pax(blocks.at(data, size))
            offset = data + -(-size // _BLOCK) * _BLOCK
            continue
        if flag not in _FILES and flag not in _NO_DATA:
            raise _Unusual
        name = _text(header[0:100])
        if header[345]:
            name = f"{_text(header[345:500])}/{name}"
        if pax:
            name = pax.get("path", name)
            size = int(pax.get("size", size))
        link = ""
        if flag in (_LINK, _SYMLINK):
            link = pax.get("linkpath", _text(header[157:257]))
        pax = {}
        kind = "other"
        if flag == b"5" or (flag == b"\0" and name.endswith("/")):
            name = name.rstrip("/")  # a folder, named as the tarfile module names it
        elif flag in _FILES:
            kind = "file"
            _check_inside(path, name, data, size, file_size)
        elif flag == _LINK:
            kind = "link"
        elif flag == _SYMLINK:
            kind = "symlink"
        cell = blocks.at(data, size) if kind == "file" and _wanted(name, size) else None
        entries.append((name, kind, data, size, link, cell))
        offset = data + (-(-size // _BLOCK) * _BLOCK if kind == "file" else 0)


def _check_sums(headers: list[bytes]) -> None:
    """Every header's checksum (its bytes summed, the checksum field as spaces) against
    the octal number in its field, all at once.

    Raises:
        _Unusual: For a mismatch (the tarfile module then decides what it is).
    """
    if not headers:
        return
    blocks = np.frombuffer(b"".join(headers), np.uint8).reshape(len(headers), _BLOCK)
    field = blocks[:, 148:156].astype(np.int64)
    computed = blocks.sum(axis=1, dtype=np.int64) - field.sum(axis=1) + 8 * ord(" ")
    digits = (field >= ord("0")) & (field <= ord("7"))
    # Digits end at the first NUL or space after them: no digit may follow a non-digit
    # that follows a digit (leading spaces are allowed).
    started = np.cumsum(digits, axis=1) > 0
    ended = np.cumsum(started & ~digits, axis=1) > 0
    if (digits & ended).any():
        raise _Unusual
    places: np.ndarray = np.cumsum(digits[:, ::-1], axis=1)[:, ::-1] - digits  # after each
    stored = ((field - ord("0")) * digits * (8**places)).sum(axis=1)
    if not np.array_equal(stored, computed):
        raise _Unusual


def _number(field: bytes) -> int:
    """An octal number field (base-256 ones are left to the tarfile module)."""
    if field[:1] in (b"\x80", b"\xff"):
        raise _Unusual
    try:
        return int(field.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        raise _Unusual from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax(records: bytes) -> dict[str, str]:
    """The ``"%d key=value\\n"`` records of a pax header."""
    fields: dict[str, str] = {}
    at = 0
    try:
        while at < len(records) and records[at]:
            space = records.index(b" ", at)
            length = int(records[at:space])
            key, equals, value = records[space + 1 : at + length - 1].partition(b"=")
            if not equals or length <= 0 or records[at + length - 1 : at + length] != b"\n":
                raise _Unusual
            if key in (b"path", b"linkpath", b"size"):
                fields[key.decode()] = value.decode("utf-8", "surrogateescape")
            elif key.startswith(b"GNU.sparse") or key == b"hdrcharset":
                raise _Unusual
            at += length
    except ValueError:
        raise _Unusual from None
    return fields


class MemberNames(Sequence[str]):
    """Per row of a table of shards, the name of its member of ``kinds`` (the first of
    them present, ``000123.txt.gz`` for a gzipped one), built from the shard's index
    when a message needs it: no string is held per sample.

    Args:
        indexes: The table's shards' indexes, in order.
        starts: Where each shard's samples start among the rows (and the row count).
        kinds: The member kinds the column reads, the first present winning.
    """

    def __init__(self, indexes: Sequence[ShardIndex], starts: np.ndarray, kinds: Sequence[str]):
        self.indexes = list(indexes)
        self.starts = np.asarray(starts, np.int64)
        self.kinds = list(kinds)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, row: Any) -> Any:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = int(row)
        k = int(np.searchsorted(self.starts, row, side="right")) - 1
        index, sample = self.indexes[k], row - int(self.starts[k])
        try:
            return self._name(index, sample)
        except (OSError, ValueError):  # the cache folder was emptied meanwhile
            return f"sample {sample} (its index {index.file!r} is gone)"

    def _name(self, index: ShardIndex, sample: int) -> str:
        with index.columns() as columns:
            key = columns.key(sample)
            for kind in self.kinds:
                if kind in index.kinds:
                    offsets, _, gzipped = columns.members(kind)
                    if offsets[sample] >= 0:
                        return f"{key}.{kind}{'.gz' if gzipped[sample] else ''}"
        return f"{key}.{self.kinds[0]}"
