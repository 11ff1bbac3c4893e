"""`ShardTable`: WebDataset tar shards as a table. A row is a sample, the members sharing a
key (``000123.jpg``, ``000123.txt``, ``000123.json``); a column is a member's extension
(``"jpg"``, ``"txt"``, ``"cls"``) or a field of a JSON member (``"json.width"``).

Each shard is indexed once (`shard_index`); image members are then read by offset a batch
at a time (`TarMembers`), and small members (captions, classes, JSON) are read into memory
when their column is asked for. Samples are in shard order, then archive order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from multimodal_dataset.io.files import MissingDataError
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.tar_index import shard_index, split_key
from multimodal_dataset.io.tar_members import TarMembers
from multimodal_dataset.io.urls import parent
from multimodal_dataset.sources.images.encoded import DEFAULT_MAX_FILE_BYTES
from multimodal_dataset.sources.images.from_bytes import EncodedColumn
from multimodal_dataset.tables.table import Table

#: Small members (captions, JSON) are read this many samples at a time.
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
        self.keys: list[str] = []
        self.shard_of: list[int] = []
        self._gzipped: dict[str, set[int]] = {}  # extension -> rows whose member is .gz
        members: dict[str, dict[int, tuple[int, int]]] = {}  # extension -> row -> (offset, size)
        for k, shard in enumerate(self.shards):
            rows: dict[str, int] = {}
            last = None
            for member, offset, size in shard_index(shard, cache_dir, self.storage):
                key, extension = split_key(member)
                if not extension:
                    continue  # not part of a sample (WebDataset skips these too)
                # WebDataset's conventions: extensions match whatever their case, and a
                # member ending in .gz is the member without it, gzip-compressed.
                extension = extension.lower()
                gzipped = extension.endswith(".gz")
                extension = extension.removesuffix(".gz")
                row = rows.get(key)
                if row is None:
                    row = rows[key] = len(self.keys)
                    self.keys.append(key)
                    self.shard_of.append(k)
                elif key != last or row in members.get(extension, {}):
                    raise ValueError(
                        f"Shard {shard!r} holds the key {key!r} twice (member {member!r} "
                        "again, or apart from the key's other members): WebDataset keys must "
                        "be unique and their members adjacent in a shard. Write the shard "
                        "again with unique keys."
                    )
                members.setdefault(extension, {})[row] = (offset, size)
                if gzipped:
                    self._gzipped.setdefault(extension, set()).add(row)
                last = key
        self._members = members
        self._missing: dict[str, dict[int, str]] = {}
        self._json: dict[str, list[Any]] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self._members)

    def __len__(self) -> int:
        return len(self.keys)

    def describe_row(self, row: int) -> str:
        return f"key {self.keys[row]!r} of shard {self.shards[self.shard_of[row]]!r}"

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

    def missing(self, name: str) -> dict[int, str]:
        self.column(name, "input")
        return self._missing.get(name, {})

    # ------------------------------------------------------------------------ columns

    def _extensions(self, name: str) -> list[str]:
        """The member extensions that ``name`` reads (alternatives split at ';')."""
        wanted = [part.strip().lower() for part in name.split(";")]
        # "txt.gz" is how the webdataset library names a gzipped member's column.
        wanted = [
            part.removesuffix(".gz") if part.removesuffix(".gz") in self._gzipped else part
            for part in wanted
        ]
        if all(part in self._members for part in wanted):
            return wanted
        extension, dot, _ = name.lower().partition(".")
        if dot and extension in self._members and self._is_json(extension):
            return [extension]
        return []

    @staticmethod
    def _is_json(extension: str) -> bool:
        return extension == "json" or extension.endswith(".json")

    def _member_column(self, name: str) -> TarMembers:
        """Per row, the first present member of ``name``'s extensions."""
        count = len(self.keys)
        shard = np.asarray(self.shard_of, dtype=np.int32)
        offsets = np.full(count, -1, dtype=np.int64)
        sizes = np.zeros(count, dtype=np.int64)
        extensions = self._extensions(name)
        member_names = [f"{key}.{extensions[0]}" for key in self.keys]
        gzipped = np.zeros(count, dtype=bool)
        for extension in reversed(extensions):  # the first alternative wins
            compressed = self._gzipped.get(extension, set())
            for row, (offset, size) in self._members[extension].items():
                offsets[row], sizes[row] = offset, size
                gzipped[row] = row in compressed
                suffix = ".gz" if gzipped[row] else ""
                member_names[row] = f"{self.keys[row]}.{extension}{suffix}"
        return TarMembers(
            self.shards,
            shard,
            offsets,
            sizes,
            member_names,
            self.max_member_bytes,
            self.storage,
            gzipped=gzipped if gzipped.any() else None,
        )

    def _images(self, name: str) -> EncodedColumn | None:
        return self._member_column(name)

    def _read(self, name: str) -> np.ndarray:
        extension, dot, field = name.partition(".")
        if not (dot and extension.lower() in self._members and self._is_json(extension.lower())):
            extension, field = name, ""
        members = self._member_column(extension)
        missing: dict[int, str] = {}
        values = np.empty(len(self.keys), dtype=object)
        parsed = self._parsed_json(extension, members) if field else None
        contents = None if parsed is not None else _contents(members)
        for row in range(len(self.keys)):
            if not members.has(row):
                missing[row] = f"{self.describe_row(row)} has no member {members.names[row]!r}"
                continue
            if parsed is not None:
                value, problem = _field(parsed[row], field)
                if problem:
                    missing[row] = f"{members.names[row]} in {self.describe_row(row)}: {problem}"
                values[row] = value
            else:
                assert contents is not None
                values[row] = contents[row].decode("utf-8", errors="surrogateescape")
        members.close()
        self._missing[name] = missing
        return values

    def _parsed_json(self, extension: str, members: TarMembers) -> list[Any]:
        if extension not in self._json:
            parsed: list[Any] = []
            contents = _contents(members)
            for row in range(len(self.keys)):
                data = contents[row] if members.has(row) else None
                try:
                    parsed.append(None if data is None else json.loads(data))
                except ValueError as error:
                    raise ValueError(
                        f"Member {members.names[row]!r} of {self.describe_row(row)} is not "
                        f"valid JSON ({error})."
                    ) from None
            self._json[extension] = parsed
        return self._json[extension]


def _contents(members: TarMembers) -> list[bytes]:
    """Every present member's bytes (b"" for an absent one), remote ones fetched many at a
    time; a member that cannot be read is an error naming it."""
    contents: list[bytes] = []
    for start in range(0, len(members), _CHUNK_ROWS):
        rows = list(range(start, min(start + _CHUNK_ROWS, len(members))))
        for row, data in zip(rows, members.get_many(rows), strict=True):
            if isinstance(data, MissingDataError):
                data = b""
            elif isinstance(data, Exception):
                kind = ValueError if isinstance(data, ValueError) else OSError
                raise kind(f"Cannot read {members.describe(row)}: {data}") from data
            contents.append(data)
    return contents


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
