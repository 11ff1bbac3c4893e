"""`DecodedCache`: each sample's decoded ``uint8`` values, kept in memory-mapped files so
that a file is decoded once, not once per epoch (``cache=`` of the image sources).

One cache directory holds one folder per *fingerprint*: everything that changes what a
sample decodes to (the output size, colour mode, interpolation and crop, the decoders'
versions, the number of samples and the cache format). A folder holds

- ``values.u8``: the samples' values, one fixed-size record each;
- ``keys.u64``: per sample, a 64-bit hash of its input's identity (a local file's path,
  size and modification time; a URL's size and version; a table row's or tar member's
  file identity and offset; otherwise the encoded bytes), 0 while not filled;
- ``sums.u32``: per sample, the CRC-32 of its key and record together;
- ``meta.json``: the fingerprint, written last when the folder is made.

A record is served only when its key matches the sample's identity now (a changed file is
decoded again, never served stale) and its checksum, taken over the key and the values,
matches what was copied (a damaged record is decoded again and reported). A record is
written key cleared first, then values, checksum, key, so a run interrupted mid-write
leaves a record that is simply not served, and the next run fills it. Several threads and
processes may fill one cache, also sources whose samples share a slot (two sources with
the same count and preprocessing share a folder): a reader checks the checksum of what it
copied against the key it expects, so a record another writer changed meanwhile, for
another identity, is never served. The folder is made under a file lock and its files are
allocated in full up front (so a full disk is an error when the cache is opened, not a
crash mid-epoch). The cache's files must be regular files inside its folder: a symbolic
link, a named pipe or an oversized ``meta.json`` is refused, never followed or read whole.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from multimodal_dataset._utils.picklable import Picklable
from multimodal_dataset.io.cache_files import CacheError, CacheWarning, explain, locked
from multimodal_dataset.io.files import (
    FileTooLargeError,
    NotARegularFileError,
    open_regular_file,
    read_regular_file,
)

#: Bumped whenever what a record holds changes; part of every fingerprint.
CACHE_FORMAT = 2
_META = "meta.json"
#: How a source checks that a cached record still matches its original (``cache_validation=``):
#: ``"run"`` takes each original's identity (a local file's path, size and modification
#: time; otherwise its bytes) once per run, ``"epoch"`` once per epoch (a file rewritten
#: during training is decoded again), ``"trust"`` serves every filled record without
#: touching the originals (offline or remote originals, after ``multimodal-dataset cache``
#: filled the cache), reading only the samples not cached yet.
CacheValidation = Literal["run", "epoch", "trust"]
CACHE_VALIDATIONS = ("run", "epoch", "trust")
#: A cache's meta.json is refused past this size (a fingerprint is a few hundred bytes).
MAX_META_BYTES = 1 << 20
_FILES = {"values.u8": np.uint8, "keys.u64": np.uint64, "sums.u32": np.uint32}


def record_sum(key: int, record: np.ndarray) -> int:
    """The CRC-32 of a record's key and values: a record written for another key fails it."""
    return zlib.crc32(record.data, zlib.crc32(int(key).to_bytes(8, "little")))


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
        chosen, expected = samples[positions], keys[positions]
        records = values[chosen]  # a copy: what is checked is what is served
        found = sums[chosen]
        crc = np.fromiter(
            (record_sum(k, r) for k, r in zip(expected, records, strict=True)),
            np.uint32,
            len(records),
        )
        intact = crc == found
        if not intact.all():
            bad = np.flatnonzero(~intact)
            # Changed since it was copied (another writer of the slot): not served, and
            # not damage; damaged is a record whose key and checksum stayed as they were.
            unchanged = (stored[chosen[bad]] == expected[bad]) & (sums[chosen[bad]] == found[bad])
            with self._lock:
                self._damaged += chosen[bad[unchanged]].tolist()
            hit[positions[bad]] = False
        out[positions[intact]] = records[intact].reshape(-1, *self.shape)
        return hit

    def store(self, sample: int, key: int, value: np.ndarray) -> None:
        """Writes ``sample``'s record: the key cleared, the values, the checksum, the key."""
        values, keys, sums = self._open()
        record = np.ascontiguousarray(value, dtype=np.uint8).reshape(-1)
        keys[sample] = 0
        values[sample] = record
        sums[sample] = record_sum(key, record)
        keys[sample] = key

    def stored(self, samples: np.ndarray) -> np.ndarray:
        """The key each of ``samples`` is filled for (0: not filled)."""
        keys: np.ndarray = self._open()[1][samples]
        return keys

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
                # Opened without following links: a link planted in the folder must not
                # make the cache write elsewhere. A plain ndarray over the mapping:
                # np.memmap's Python-level indexing costs about 30 us per gather.
                path = str(self.folder / name)
                try:
                    fd = open_regular_file(path, follow_links=False, write=True)
                except NotARegularFileError as error:
                    raise CacheError(self._foreign(error)) from None
                with os.fdopen(fd, "r+b") as file:
                    mapped = np.memmap(file, dtype, "r+", shape=shape)
                arrays.append(mapped.view(np.ndarray))
        values, keys, sums = arrays
        return values, keys, sums

    def _foreign(self, error: object) -> str:
        return (
            f"The cache folder {self.folder} holds something that is not a file of a cache "
            f"({error}). Delete the folder and it is filled again."
        )

    def _check_folder(self) -> None:
        if self.folder.is_symlink():
            raise CacheError(self._foreign(f"{str(self.folder)!r} is a symbolic link"))

    def _create(self, sizes: Mapping[str, int]) -> None:
        self._check_folder()
        self.folder.mkdir(exist_ok=True)
        for name, dtype in _FILES.items():
            nbytes = sizes[name] * np.dtype(dtype).itemsize
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
            try:
                fd = os.open(self.folder / name, flags, 0o644)
            except OSError as error:
                if error.errno == errno.ELOOP:
                    raise CacheError(self._foreign(f"{name} is a symbolic link")) from None
                raise
            with os.fdopen(fd, "wb") as file:
                if nbytes:
                    # Allocate every block now: a full disk fails here, not with SIGBUS
                    # when a memory-mapped page is first written during training.
                    os.posix_fallocate(file.fileno(), 0, nbytes)
        temporary = self.folder / f"{_META}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(self.fingerprint, indent=1, sort_keys=True))
        os.replace(temporary, self.folder / _META)

    def _check(self, sizes: Mapping[str, int]) -> None:
        self._check_folder()
        meta = self.folder / _META
        try:
            found = json.loads(read_regular_file(str(meta), MAX_META_BYTES, follow_links=False))
        except (NotARegularFileError, FileTooLargeError) as error:
            raise CacheError(self._foreign(error)) from None
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
            if path.is_symlink():
                raise CacheError(self._foreign(f"{name} is a symbolic link"))
            if path.exists() and not path.is_file():
                raise CacheError(self._foreign(f"{name} is not a regular file"))
            if not path.is_file() or path.stat().st_size != expected:
                actual = path.stat().st_size if path.is_file() else "missing"
                raise CacheError(
                    f"The cache file {path} is damaged (size {actual}, expected {expected} "
                    f"bytes). Delete the folder {self.folder} and it is filled again."
                )
