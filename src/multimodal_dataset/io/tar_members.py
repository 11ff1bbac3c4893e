"""`TarMembers`: random access to one member of each sample in uncompressed tar shards
(WebDataset), read by offset from an index, never by scanning the archive.

A column holds, per row, the shard it lives in, the byte offset and size of its member's
data, and its member name (for messages). Each process opens the shards it reads once and
reads members with ``os.pread``, which threads can share. Files are data from elsewhere:
no member is read past ``max_bytes``, and a member whose data lies past the end of its
shard (a truncated shard) is an error naming both.
"""

from __future__ import annotations

import contextlib
import os
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset._utils.picklable import Picklable
from multimodal_dataset.io.files import MissingDataError, open_regular_file
from multimodal_dataset.io.shared import shareable_state
from multimodal_dataset.io.storage import Requests, Storage
from multimodal_dataset.io.urls import is_remote


class TarMembers(Picklable):
    """One member per row of tar shards, read by offset.

    Args:
        shards: The shard files.
        shard: Per row, the index of its shard in ``shards``.
        offsets: Per row, the offset of the member's data in its shard (-1: the sample
            has no such member).
        sizes: Per row, the member's size in bytes.
        names: Per row, the member's name (``"000123.jpg"``), for messages.
        max_bytes: Members larger than this are refused rather than read (a gzipped
            member also when decompressed).
        storage: Reads shards that are URLs (see ``storage``); local shards need none.
        gzipped: Per row, whether the member is gzip-compressed (``000123.txt.gz``, as
            WebDataset writes them): its bytes are decompressed. None: no row is.
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_files": dict,
        "_lock": threading.Lock,
        "_versions": dict,
    }

    def __init__(
        self,
        shards: Sequence[str],
        shard: np.ndarray,
        offsets: np.ndarray,
        sizes: np.ndarray,
        names: Sequence[str],
        max_bytes: int,
        storage: Storage | None = None,
        gzipped: np.ndarray | None = None,
    ) -> None:
        self.shards = [os.fspath(s) for s in shards]
        self.gzipped = None if gzipped is None else _as(gzipped, np.bool_)
        self.remote = any(is_remote(s) for s in self.shards)
        self.storage = (storage or Storage()) if self.remote else None
        # As given when they have the type (memory maps stay memory maps, see getstate).
        self.shard = _as(shard, np.int32)
        self.offsets = _as(offsets, np.int64)
        self.sizes = _as(sizes, np.int64)
        self.names = names if isinstance(names, Sequence) else list(names)
        self.max_bytes = max_bytes
        self._files: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()
        self._versions: dict[int, str | None] = {}  # per shard, taken once per process

    def __getstate__(self) -> dict[str, Any]:
        # To a worker process: the per-row arrays as files it maps, never copies.
        return shareable_state(self, super().__getstate__())

    def __len__(self) -> int:
        return len(self.shard)

    def __repr__(self) -> str:
        return f"TarMembers({len(self)} rows in {len(self.shards)} shards)"

    def has(self, row: int) -> bool:
        """Whether the sample of ``row`` has this member."""
        return bool(self.offsets[row] >= 0)

    def get(self, row: int) -> tuple[bytes | None, str | None]:
        """The member's bytes, and no path.

        Raises:
            MissingDataError: When the sample has no such member.
        """
        result = self.get_many([row])[0]
        if isinstance(result, Exception):
            raise result
        return result, None

    def get_many(
        self, rows: Sequence[int], requests: Requests | None = None
    ) -> list[bytes | Exception]:
        """The bytes of the members of ``rows`` (from remote shards: read concurrently),
        each failure in its place: a missing member, one over ``max_bytes``, a shard that
        ends too soon, or an error reading it (naming the URL)."""
        results: list[bytes | Exception] = [b""] * len(rows)
        wanted = []
        for i, row in enumerate(rows):
            problem = self._problem(row)
            if problem is not None:
                results[i] = problem
            elif self.storage is None:
                try:
                    results[i] = self._checked(row, self._pread(row))
                except OSError as error:
                    results[i] = error
            else:
                wanted.append(i)
        if wanted and self.storage is not None:
            rows_wanted = [int(rows[i]) for i in wanted]
            starts = [int(self.offsets[r]) for r in rows_wanted]
            fetched = self.storage.read_ranges(
                [self.shards[int(self.shard[r])] for r in rows_wanted],
                starts,
                [start + int(self.sizes[r]) for start, r in zip(starts, rows_wanted, strict=True)],
                requests,
            )
            for i, row, data in zip(wanted, rows_wanted, fetched, strict=True):
                results[i] = data if isinstance(data, Exception) else self._checked(row, data)
        return results

    def _problem(self, row: int) -> Exception | None:
        if not self.has(row):
            return MissingDataError("the sample has no such member")
        size = int(self.sizes[row])
        if size > self.max_bytes:
            return ValueError(
                f"member {self.names[row]!r} of shard {self.shards[int(self.shard[row])]!r} is "
                f"{size:,} bytes, more than max_file_bytes={self.max_bytes:,}"
            )
        return None

    def _pread(self, row: int) -> bytes:
        return os.pread(
            self._fd(int(self.shard[row])), int(self.sizes[row]), int(self.offsets[row])
        )

    def _checked(self, row: int, data: bytes) -> bytes | Exception:
        size = int(self.sizes[row])
        if len(data) == size:
            if self.gzipped is not None and self.gzipped[row]:
                return self._gunzip(row, data)
            return data
        return OSError(
            f"shard {self.shards[int(self.shard[row])]!r} is truncated: member "
            f"{self.names[row]!r} needs {size:,} bytes at offset {int(self.offsets[row]):,}, "
            "but the file ends first"
        )

    def _gunzip(self, row: int, data: bytes) -> bytes | Exception:
        """The decompressed member, at most ``max_bytes`` of it (a gzip bomb is refused)."""
        inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out = inflate.decompress(data, self.max_bytes + 1)
        except zlib.error as error:
            return ValueError(f"{self.describe(row)} is not valid gzip data ({error})")
        if len(out) > self.max_bytes or inflate.unconsumed_tail:
            return ValueError(
                f"{self.describe(row)} decompresses to more than max_file_bytes="
                f"{self.max_bytes:,} bytes"
            )
        if not inflate.eof:
            return ValueError(f"{self.describe(row)} is truncated gzip data")
        return out

    def identity(self, row: int) -> bytes | None:
        """Where ``row``'s member is stored, for a cache's key, without reading it: the
        shard's identity (a local file's path, size and modification time; an object's
        URL, size and ETag or other version, one request per shard and process) and the
        member's offset and size. None where the sample has no such member, or a remote
        shard's store gives no version."""
        if not self.has(row):
            return None
        k = int(self.shard[row])
        if k not in self._versions:
            path = self.shards[k]
            if self.storage is not None:
                size, version = self.storage.identity(path)
                self._versions[k] = f"{path}\0{size}\0{version}" if version else None
            else:
                info = os.stat(path)
                self._versions[k] = f"{os.path.abspath(path)}\0{info.st_size}\0{info.st_mtime_ns}"
        shard = self._versions[k]
        if shard is None:
            return None
        where = f"tar\0{shard}\0{int(self.offsets[row])}\0{int(self.sizes[row])}"
        return where.encode("utf-8", "surrogateescape")

    def describe(self, row: int) -> str:
        return f"member {self.names[row]!r} of shard {self.shards[int(self.shard[row])]!r}"

    def close(self) -> None:
        with self._lock:
            files, self._files = self._files, {}
        for (pid, _), fd in files.items():
            if pid == os.getpid():
                os.close(fd)

    def _fd(self, k: int) -> int:
        key = (os.getpid(), k)  # a forked process opens its own descriptors
        fd = self._files.get(key)
        if fd is None:
            with self._lock:
                fd = self._files.get(key)
                if fd is None:
                    fd = self._files[key] = open_regular_file(self.shards[k])
        return fd

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown, os may be gone
            self.close()


def _as(values: Any, dtype: Any) -> np.ndarray:
    """``values`` as an array of ``dtype``, the array itself when it already is one."""
    if isinstance(values, np.ndarray) and values.dtype == dtype:
        return values
    return np.asarray(values, dtype=dtype)
