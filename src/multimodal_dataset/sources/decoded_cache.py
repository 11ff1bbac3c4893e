"""`DecodedCache`: each sample's decoded ``uint8`` values, kept in memory-mapped files so
that a file is decoded once, not once per epoch (``cache=`` of the image sources).

One cache directory holds one folder per *fingerprint*: everything that changes what a
sample decodes to (the output size, colour mode, interpolation and crop, the decoders'
versions, the number of samples and the cache format). A folder holds

- ``values.u8``: the samples' values, one fixed-size record each;
- ``keys.u64``: per sample, a 64-bit hash of its input's identity (a local file's path,
  size and modification time; otherwise the encoded bytes), 0 while not filled;
- ``sums.u32``: per sample, the CRC-32 of its record;
- ``meta.json``: the fingerprint, written last when the folder is made.

A record is served only when its key matches the sample's identity now (a changed file is
decoded again, never served stale) and its checksum matches (a damaged record is decoded
again and reported). A record is written value first, checksum next, key last, so a run
interrupted mid-write leaves a record that is simply not served, and the next run fills
it. Several threads and processes may fill one cache: the folder is made under a file lock
and its files are allocated in full up front (so a full disk is an error when the cache is
opened, not a crash mid-epoch); two writers of one record write the same bytes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset.picklable import Picklable

#: Bumped whenever what a record holds changes; part of every fingerprint.
CACHE_FORMAT = 1
_META = "meta.json"
_FILES = {"values.u8": np.uint8, "keys.u64": np.uint64, "sums.u32": np.uint32}


class CacheError(OSError):
    """A cache directory cannot be used (not writable, full, or not a cache of ours)."""


class CacheWarning(UserWarning):
    """Cached records failed their checksum and were decoded again."""


def identity_key(identity: bytes) -> int:
    """A nonzero 64-bit key of a sample's identity (0 marks an empty record)."""
    digest = hashlib.blake2b(identity, digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1


class DecodedCache(Picklable):
    """The decoded records of one source's samples under ``root``.

    Args:
        root: The cache directory (made if missing); one directory may hold the caches
            of several sources and preprocessings, each in its own folder.
        fingerprint: What the decoded values depend on, besides each sample's input.
        count: How many samples the source has.
        shape: The shape of one sample's ``uint8`` values.

    Raises:
        CacheError: When the cache folder cannot be made or opened (not writable, not
            enough space, or files that are not a cache of this fingerprint).
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_arrays": lambda: None,
        "_lock": threading.Lock,
        "_damaged": list,
    }

    def __init__(
        self,
        root: str | os.PathLike[str],
        fingerprint: Mapping[str, Any],
        count: int,
        shape: Sequence[int],
    ) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.count = int(count)
        self.fingerprint = {
            "format": CACHE_FORMAT,
            "count": self.count,
            "shape": list(self.shape),
            **fingerprint,
        }
        text = json.dumps(self.fingerprint, sort_keys=True)
        digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        self.folder = Path(os.fspath(root)).expanduser().absolute() / f"decoded-{digest}"
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._damaged: list[int] = []
        self._open()  # errors now, not at the first batch

    def __repr__(self) -> str:
        return f"DecodedCache({str(self.folder)!r}, {self.count} samples of {self.shape})"

    # ----------------------------------------------------------------------- reading

    def fetch(self, samples: np.ndarray, keys: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Copies into ``out[i]`` the record of ``samples[i]`` where it is filled for
        ``keys[i]`` and intact (one gather for the batch); returns where it did."""
        values, stored, sums = self._open()
        hit: np.ndarray = (keys != 0) & (stored[samples] == keys)
        positions = np.flatnonzero(hit)
        if not len(positions):
            return hit
        records = values[samples[positions]]
        crc = np.fromiter((zlib.crc32(r.data) for r in records), np.uint32, len(records))
        intact = crc == sums[samples[positions]]
        if not intact.all():
            with self._lock:
                self._damaged += samples[positions[~intact]].tolist()
            hit[positions[~intact]] = False
        out[positions[intact]] = records[intact].reshape(-1, *self.shape)
        return hit

    def store(self, sample: int, key: int, value: np.ndarray) -> None:
        """Writes ``sample``'s record: the values, then the checksum, then the key."""
        values, keys, sums = self._open()
        record = np.ascontiguousarray(value, dtype=np.uint8).reshape(-1)
        values[sample] = record
        sums[sample] = zlib.crc32(record.data)
        keys[sample] = key

    def missing(self, samples: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Where ``samples[i]`` has no record filled for ``keys[i]`` (checksums unread)."""
        stored = self._open()[1]
        missing: np.ndarray = stored[samples] != keys
        return missing

    def filled(self) -> int:
        """How many records are filled (for any key)."""
        return int(np.count_nonzero(self._open()[1]))

    def report_damaged(self) -> None:
        """Warns once for the records that failed their checksum since the last report."""
        with self._lock:
            damaged, self._damaged = sorted(set(self._damaged)), []
        if damaged:
            shown = ", ".join(map(str, damaged[:5])) + (" ..." if len(damaged) > 5 else "")
            warnings.warn(
                f"{len(damaged)} cached record(s) in {self.folder} failed their checksum "
                f"(samples {shown}) and were decoded again; they are rewritten. If this "
                "keeps happening, the disk may be failing: delete the folder.",
                CacheWarning,
                stacklevel=4,
            )

    # ----------------------------------------------------------------------- the files

    def _open(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Mapped once per process (a forked process shares the parent's shared mappings;
        # a spawned one unpickles without them and maps the files again).
        if self._arrays is None:
            with self._lock:
                if self._arrays is None:
                    self._arrays = self._map()
        return self._arrays

    def _map(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        record = int(np.prod(self.shape))
        sizes = {"values.u8": self.count * record, "keys.u64": self.count, "sums.u32": self.count}
        try:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            with locked(self.folder.parent / f".{self.folder.name}.lock"):
                if not (self.folder / _META).exists():
                    self._create(sizes)
                self._check(sizes)
        except CacheError:
            raise
        except OSError as error:
            raise CacheError(explain(error, self.folder)) from error
        arrays = []
        for name, dtype in _FILES.items():
            shape = (self.count, record) if name == "values.u8" else (self.count,)
            if self.count == 0:
                arrays.append(np.zeros(shape, dtype))
            else:
                # A plain ndarray over the mapping: np.memmap's Python-level indexing
                # costs about 30 us per gather, on the hot path.
                mapped = np.memmap(self.folder / name, dtype, "r+", shape=shape)
                arrays.append(mapped.view(np.ndarray))
        values, keys, sums = arrays
        return values, keys, sums

    def _create(self, sizes: Mapping[str, int]) -> None:
        self.folder.mkdir(exist_ok=True)
        for name, dtype in _FILES.items():
            nbytes = sizes[name] * np.dtype(dtype).itemsize
            with open(self.folder / name, "wb") as file:
                if nbytes:
                    # Allocate every block now: a full disk fails here, not with SIGBUS
                    # when a memory-mapped page is first written during training.
                    os.posix_fallocate(file.fileno(), 0, nbytes)
        temporary = self.folder / f"{_META}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(self.fingerprint, indent=1, sort_keys=True))
        os.replace(temporary, self.folder / _META)

    def _check(self, sizes: Mapping[str, int]) -> None:
        meta = self.folder / _META
        try:
            found = json.loads(meta.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise CacheError(
                f"The cache file {meta} is damaged ({error}). Delete the folder "
                f"{self.folder} and it is filled again."
            ) from None
        if found != self.fingerprint:
            raise CacheError(
                f"The cache folder {self.folder} holds a different cache ({meta} says "
                f"{found!r}, expected {self.fingerprint!r}). Delete the folder and it is "
                "filled again."
            )
        for name, dtype in _FILES.items():
            path = self.folder / name
            expected = sizes[name] * np.dtype(dtype).itemsize
            if not path.is_file() or path.stat().st_size != expected:
                actual = path.stat().st_size if path.is_file() else "missing"
                raise CacheError(
                    f"The cache file {path} is damaged (size {actual}, expected {expected} "
                    f"bytes). Delete the folder {self.folder} and it is filled again."
                )


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (fcntl), held for the block."""
    import fcntl

    with open(path, "a") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def explain(error: OSError, folder: Path) -> str:
    fix = "Pass cache= a folder on a disk with space, or cache=None to train without one."
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"Not enough disk space for the cache in {folder} ({error.strerror}). {fix}"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"The cache directory {folder.parent} is not writable ({error.strerror}). "
            "Pass cache= a folder you can write to, or cache=None to train without one."
        )
    return f"The cache in {folder} cannot be used ({error}). {fix}"
