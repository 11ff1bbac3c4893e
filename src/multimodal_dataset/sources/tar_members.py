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
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset.files import open_regular_file
from multimodal_dataset.picklable import Picklable
from multimodal_dataset.sources.encoded_images import MissingImageError


class TarMembers(Picklable):
    """One member per row of tar shards, read by offset.

    Args:
        shards: The shard files.
        shard: Per row, the index of its shard in ``shards``.
        offsets: Per row, the offset of the member's data in its shard (-1: the sample
            has no such member).
        sizes: Per row, the member's size in bytes.
        names: Per row, the member's name (``"000123.jpg"``), for messages.
        max_bytes: Members larger than this are refused rather than read.
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_files": dict,
        "_lock": threading.Lock,
    }

    def __init__(
        self,
        shards: Sequence[str],
        shard: np.ndarray,
        offsets: np.ndarray,
        sizes: np.ndarray,
        names: Sequence[str],
        max_bytes: int,
    ) -> None:
        self.shards = [os.fspath(s) for s in shards]
        self.shard = np.asarray(shard, dtype=np.int32)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.names = list(names)
        self.max_bytes = max_bytes
        self._files: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()

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
            MissingImageError: When the sample has no such member.
        """
        k = int(self.shard[row])
        if not self.has(row):
            raise MissingImageError("the sample has no such member")
        size = int(self.sizes[row])
        if size > self.max_bytes:
            raise ValueError(
                f"member {self.names[row]!r} of shard {self.shards[k]!r} is {size:,} bytes, "
                f"more than max_file_bytes={self.max_bytes:,}"
            )
        data = os.pread(self._fd(k), size, int(self.offsets[row]))
        if len(data) != size:
            raise OSError(
                f"shard {self.shards[k]!r} is truncated: member {self.names[row]!r} needs "
                f"{size:,} bytes at offset {int(self.offsets[row]):,}, but the file ends first"
            )
        return data, None

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
