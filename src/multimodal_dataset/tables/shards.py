"""`ShardTable`: WebDataset tar shards as a table. A row is a sample, the members sharing a
key (``000123.jpg``, ``000123.txt``, ``000123.json``); a column is a member's extension
(``"jpg"``, ``"txt"``, ``"cls"``) or a field of a JSON member (``"json.width"``).

Each shard is indexed once (`shard_index`, a memory-mapped Arrow file in the cache that
also holds the small members); image members are then read by offset a batch at a time
(`TarMembers`), and small members (captions, classes, JSON) come from the index a shard
at a time. Nothing is held per sample but the offsets of the columns asked for, in
memory maps. Samples are in shard order, then archive order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset.io.files import MissingDataError
from multimodal_dataset.io.spilled import preallocated
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.tar_index import MemberNames, ShardIndex, shard_indexes
from multimodal_dataset.io.tar_members import TarMembers
from multimodal_dataset.io.urls import parent
from multimodal_dataset.sources.images.encoded import DEFAULT_MAX_FILE_BYTES
from multimodal_dataset.sources.images.from_bytes import EncodedColumn
from multimodal_dataset.tables.table import Table

#: Members that are not in the index (large, or gzipped) are read this many at a time.
_CHUNK_ROWS = 4096

#: Member kinds the webdataset library decodes that this library does not, and what they
#: hold (a column of them is refused by name instead of being read as text).
UNSUPPORTED = {
    "mp": "MessagePack",
    "msgpack": "MessagePack",
    "ten": "tenbin tensors",
    "pth": "a pickled PyTorch object",
    "pt": "a pickled PyTorch object",
    "pickle": "a Python pickle",
    "pkl": "a Python pickle",
    "pyd": "a Python pickle",
    "cbor": "CBOR",
    "npy": "a NumPy array",
    "npz": "NumPy arrays",
    "mat": "a MATLAB file",
}


class ShardTable(Table):
    """Tar shards read as one table of samples.

    Args:
        shards: The shard files, in order.
        name: A description for messages.
        cache_dir: Where shard indexes are kept (see ``arrow_cache``).
        max_member_bytes: Members larger than this are refused rather than read.
        storage: Reads shards that are URLs.

    Raises:
        ValueError: For a shard that is compressed, truncated or corrupt, or that holds
            one member twice (duplicate keys), naming the shard, the key and the member.
    """

    def __init__(
        self,
        shards: Sequence[str],
        name: str,
        cache_dir: str | os.PathLike[str] | None = None,
        max_member_bytes: int = DEFAULT_MAX_FILE_BYTES,
        storage: Storage | None = None,
    ) -> None:
        super().__init__(parent(shards[0]), name)
        self.shards = list(shards)
        self.storage = storage or Storage()
        self.max_member_bytes = max_member_bytes
        self.indexes: list[ShardIndex] = shard_indexes(self.shards, cache_dir, self.storage)
        counts = [index.samples for index in self.indexes]
        #: Where each shard's samples start among the rows, then the row count.
        self.starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        self._kinds = dict.fromkeys(kind for index in self.indexes for kind in index.kinds)
        self._gzipped = set().union(*(index.gzipped for index in self.indexes))
        self._missing: dict[str, Mapping[int, str]] = {}
        self._columns: dict[tuple[str, ...], TarMembers] = {}  # by extensions

    @property
    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _shard_of(self, row: int) -> int:
        return int(np.searchsorted(self.starts, row, side="right")) - 1

    def key(self, row: int) -> str:
        """The WebDataset key of ``row``'s sample (read from its shard's index)."""
        k = self._shard_of(row)
        return self.indexes[k].key(row - int(self.starts[k]))

    def describe_row(self, row: int) -> str:
        return f"key {self.key(row)!r} of shard {self.shards[self._shard_of(row)]!r}"

    def check_column(self, name: str, role: str) -> None:
        extensions = self._extensions(name)
        for extension in extensions:
            kind = UNSUPPORTED.get(extension.rpartition(".")[2])
            if kind is not None:
                raise ValueError(
                    f"{role}={name!r}: the {extension!r} members of {self.name} hold {kind}, "
                    "a member kind multimodal-dataset does not decode (it reads images, "
                    "text such as 'txt', class ids 'cls', JSON and its fields "
                    "'json.field', each also gzip-compressed as '.gz'). Write that data "
                    "as one of those members, or read it with your own Source."
                )
        if extensions:
            return
        raise KeyError(
            f"{role}={name!r}: the samples of {self.name} have no member {name!r}. Their "
            f"members are: {', '.join(map(repr, self.names))} (a JSON field is "
            "'json.field', alternatives are 'jpg;png')."
        )

    def missing(self, name: str) -> Mapping[int, str]:
        self.check_column(name, "input")
        if name not in self._missing:
            extension, field = self._json_field(name)
            if field:
                self.column(name, "input")  # parsing finds the documents without it
            else:
                members = self._member_column(extension)
                self._missing[name] = self._absent(members, {})
        return self._missing[name]

    # ------------------------------------------------------------------------ columns

    def _extensions(self, name: str) -> list[str]:
        """The member extensions that ``name`` reads (alternatives split at ';')."""
        wanted = [part.strip().lower() for part in name.split(";")]
        # "txt.gz" is how the webdataset library names a gzipped member's column.
        wanted = [
            part.removesuffix(".gz") if part.removesuffix(".gz") in self._gzipped else part
            for part in wanted
        ]
        if all(part in self._kinds for part in wanted):
            return wanted
        extension, field = self._json_field(name)
        return [extension] if field else []

    def _json_field(self, name: str) -> tuple[str, str]:
        """``("json", "half.value")`` for a JSON member's field, else ``(name, "")``."""
        extension, dot, field = name.partition(".")
        lowered = extension.lower()
        if dot and lowered in self._kinds and (lowered == "json" or lowered.endswith(".json")):
            return extension, field
        return name, ""

    def _member_column(self, name: str) -> TarMembers:
        """Per row, the first present member of ``name``'s extensions: its shard, offset,
        size and compression, gathered from the indexes into (memory-mapped) arrays
        once per column (its missing members, its cells and its images read the same)."""
        extensions = self._extensions(name)
        if tuple(extensions) not in self._columns:
            self._columns[tuple(extensions)] = self._gathered(extensions)
        return self._columns[tuple(extensions)]

    def _gathered(self, extensions: list[str]) -> TarMembers:
        count = len(self)
        shard = preallocated((count,), np.int32)
        offsets = preallocated((count,), np.int64)
        offsets.fill(-1)
        sizes = preallocated((count,), np.int64)
        gzipped = preallocated((count,), bool)
        for k, index in enumerate(self.indexes):
            lo, hi = int(self.starts[k]), int(self.starts[k + 1])
            shard[lo:hi] = k
            with index.columns() as columns:
                for extension in reversed(extensions):  # the first alternative wins
                    if extension in index.kinds:
                        here, size, compressed = columns.members(extension)
                        present = here >= 0
                        offsets[lo:hi][present] = here[present]
                        sizes[lo:hi][present] = size[present]
                        gzipped[lo:hi][present] = compressed[present]
        return TarMembers(
            self.shards,
            shard,
            offsets,
            sizes,
            MemberNames(self.indexes, self.starts, extensions),
            self.max_member_bytes,
            self.storage,
            gzipped=gzipped if self._gzipped.intersection(extensions) else None,
        )

    def _images(self, name: str) -> EncodedColumn | None:
        return self._member_column(name)

    def _absent(self, members: TarMembers, problems: dict[int, str]) -> Mapping[int, str]:
        absent = np.flatnonzero(members.offsets < 0)
        names = members.names

        def describe(row: int) -> str:
            return f"{self.describe_row(row)} has no member {names[row]!r}"

        return Problems(absent, describe, problems)

    def _read(self, name: str) -> np.ndarray:
        extension, field = self._json_field(name)
        members = self._member_column(extension)
        try:
            if not field:
                batches = self._cells(extension, members, text=True)
                values = np.empty(len(self), dtype=object)
                for first, cells in batches:
                    values[first : first + len(cells)] = cells.to_numpy(zero_copy_only=False)
                self._missing[name] = self._absent(members, {})
                return values
            values, problems = self._json_values(extension, members, field)
            self._missing[name] = self._absent(members, problems)
            return values
        finally:
            members.close()

    def _arrow_batches(self, name: str) -> Callable[[], Iterator[tuple[int, Any]]] | None:
        if self._json_field(name)[1]:
            return None

        def batches() -> Iterator[tuple[int, Any]]:
            members = self._member_column(name)
            try:
                yield from self._cells(name, members, text=True)
            finally:
                members.close()

        return batches

    def _cells(self, name: str, members: TarMembers, text: bool) -> Iterator[tuple[int, Any]]:
        """Per shard, its first row and its cells of column ``name`` (whose
        `_member_column` is ``members``) as a pyarrow array
        (``large_string`` for ``text``, else ``large_binary``; null where absent): from
        the index where it holds them, else read by offset."""
        pa = optional_import("pyarrow", "Reading WebDataset shards")
        pc = optional_import("pyarrow.compute", "Reading WebDataset shards")
        present = members.offsets >= 0
        too_large = np.flatnonzero(present & (members.sizes > members.max_bytes))
        if too_large.size:
            _raise_unreadable(members, int(too_large[0]), members.get_many([too_large[0]])[0])
        extensions = self._extensions(name)
        for k, index in enumerate(self.indexes):
            lo, hi = int(self.starts[k]), int(self.starts[k + 1])
            cells = pa.nulls(hi - lo, pa.large_binary())
            pending = np.zeros(hi - lo, bool)  # rows read by offset
            with index.columns() as columns:
                for extension in reversed(extensions):  # the first alternative wins
                    if extension not in index.kinds:
                        continue
                    here, _, gzipped = columns.members(extension)
                    here = here >= 0
                    data = columns.data(extension)
                    copied = np.zeros_like(here)
                    if data is not None:
                        copied = here & ~gzipped & data.is_valid().to_numpy(zero_copy_only=False)
                        cells = pc.if_else(pa.array(copied), data, cells)
                    pending[here] = ~copied[here]
                cells = cells.combine_chunks() if isinstance(cells, pa.ChunkedArray) else cells
                if pending.any():
                    cells = _with_read(cells, members, np.flatnonzero(pending) + lo, lo)
            if text:
                cells = _as_text(cells, members, lo)
            yield lo, cells

    def _json_values(
        self, extension: str, members: TarMembers, field: str
    ) -> tuple[np.ndarray, dict[int, str]]:
        """Per row, the value of ``field`` in its JSON member, and the rows whose document
        lacks it, with the problem."""
        values = np.empty(len(self), dtype=object)
        problems: dict[int, str] = {}
        for first, cells in self._cells(extension, members, text=False):
            for i, data in enumerate(cells.to_pylist()):
                if data is None:
                    continue
                row = first + i
                try:
                    document = json.loads(data)
                except ValueError as error:
                    raise ValueError(
                        f"Member {members.names[row]!r} of {self.describe_row(row)} is not "
                        f"valid JSON ({error})."
                    ) from None
                value, problem = _field(document, field)
                if problem:
                    problems[row] = f"{members.names[row]} in {self.describe_row(row)}: {problem}"
                values[row] = value
        return values, problems


class Problems(Mapping[int, str]):
    """Rows whose cell is absent (described when asked, none held per row) or has a
    problem, each with what is wrong.

    Args:
        absent: The rows without the member, sorted.
        describe: The message for an absent row.
        problems: Other rows, each with its problem.
    """

    def __init__(
        self, absent: np.ndarray, describe: Callable[[int], str], problems: dict[int, str]
    ) -> None:
        self.absent = absent
        self.describe = describe
        self.problems = problems

    def __getitem__(self, row: int) -> str:
        if row in self.problems:
            return self.problems[row]
        at = int(np.searchsorted(self.absent, row))
        if at < len(self.absent) and self.absent[at] == row:
            return self.describe(int(row))
        raise KeyError(row)

    def __iter__(self) -> Iterator[int]:
        yield from (int(row) for row in self.absent)
        yield from self.problems

    def __len__(self) -> int:
        return len(self.absent) + len(self.problems)


def _with_read(cells: Any, members: TarMembers, rows: np.ndarray, first: int) -> Any:
    """``cells`` (a shard's, starting at row ``first``) with ``rows`` read by offset
    (remote ones many at a time); a member that cannot be read is an error naming it."""
    pa = optional_import("pyarrow", "Reading WebDataset shards")
    values = cells.to_pylist()
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = [int(row) for row in rows[start : start + _CHUNK_ROWS]]
        for row, data in zip(chunk, members.get_many(chunk), strict=True):
            if isinstance(data, Exception) and not isinstance(data, MissingDataError):
                _raise_unreadable(members, row, data)
            values[row - first] = None if isinstance(data, Exception) else data
    return pa.array(values, pa.large_binary())


def _raise_unreadable(members: TarMembers, row: int, error: Any) -> None:
    kind = ValueError if isinstance(error, ValueError) else OSError
    raise kind(f"Cannot read {members.describe(row)}: {error}") from error


def _as_text(cells: Any, members: TarMembers, first: int) -> Any:
    """A shard's member bytes as UTF-8 text, or an error naming the first member that
    is not (as the webdataset library decodes ``txt``)."""
    pa = optional_import("pyarrow", "Reading WebDataset shards")
    try:
        return cells.cast(pa.large_string())
    except pa.ArrowInvalid:
        for i, data in enumerate(cells.to_pylist()):
            try:
                if data is not None:
                    data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"Cannot read {members.describe(first + i)} as text: it is not UTF-8 "
                    f"({error}). Write it as UTF-8, or read it with your own Source."
                ) from None
        raise


def _field(document: Any, path: str) -> tuple[Any, str]:
    """The value at the dotted ``path`` of a parsed JSON document, or a problem."""
    value = document
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None, f"no field {path!r}"
        value = value[part]
    if value is None:
        return None, f"field {path!r} is null"
    return value, ""
