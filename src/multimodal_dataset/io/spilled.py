"""Arrays written once to a temporary ``.npy`` file, so that worker processes map one copy
instead of each receiving its own through a pipe.

A spawned worker receives the dataset pickled. An in-memory array of precomputed values
(token ids, standardised numbers, table rows, targets) would be copied into every worker:
at 1e8 rows, hundreds of MB each. `spill` writes it to a file in a temporary folder of this
process, once, and returns its read-only memory map, which pickles as its path; the pages
are the page cache's, shared by every process that maps them. The file is removed when the
array's owner is garbage-collected, and the folder when the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
import uuid
import weakref
from pathlib import Path
from typing import Any

import numpy as np

#: Arrays smaller than this pickle as they are: a copy costs less than a file.
SPILL_MIN_BYTES = 1 << 20

_lock = threading.Lock()
_folder: Path | None = None


def _spill_folder() -> Path:
    global _folder
    with _lock:
        if _folder is None or not _folder.is_dir():
            _folder = Path(tempfile.mkdtemp(prefix="multimodal_dataset-shared-"))
            atexit.register(shutil.rmtree, _folder, ignore_errors=True)
        return _folder


def spill(array: np.ndarray, owner: Any) -> np.ndarray:
    """``array`` written to a temporary ``.npy`` file, as its read-only memory map; the file
    goes when ``owner`` does.

    Raises:
        OSError: When the temporary folder cannot hold it, naming the folder and the fix.
    """
    path = _spill_folder() / f"{uuid.uuid4().hex}.npy"
    try:
        np.save(path, np.ascontiguousarray(array), allow_pickle=False)
    except OSError as error:
        raise _no_room(
            path, array.nbytes, "to share them with the worker processes", error
        ) from error
    weakref.finalize(owner, _remove, str(path))
    mapped: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    return mapped


def allocate(shape: tuple[int, ...], dtype: Any, owner: Any = None) -> np.memmap:
    """A zero-filled, writable ``.npy`` memory map of ``shape`` in the temporary folder,
    for values computed a chunk at a time (token ids): its pages are the page cache's,
    never the process's own memory, and it pickles as its path (see `spill`). The file
    goes when ``owner`` does (None: when the map itself does).

    Raises:
        OSError: When the temporary folder cannot hold it, naming the folder and the fix.
    """
    path = _spill_folder() / f"{uuid.uuid4().hex}.npy"
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    try:
        mapped = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        if nbytes:
            # Every block now: a full disk fails here, not with SIGBUS mid-write.
            with open(path, "r+b") as file:
                os.posix_fallocate(file.fileno(), 0, os.path.getsize(path))
    except OSError as error:
        raise _no_room(path, nbytes, "for the dataset's precomputed values", error) from error
    weakref.finalize(mapped if owner is None else owner, _remove, str(path))
    return mapped


def preallocated(shape: tuple[int, ...], dtype: Any, owner: Any = None) -> np.ndarray:
    """A zero-filled array of ``shape`` for values computed a part at a time: `allocate`'s
    temporary memory map once it is `SPILL_MIN_BYTES` or more, else plain memory."""
    if int(np.prod(shape)) * np.dtype(dtype).itemsize >= SPILL_MIN_BYTES:
        return allocate(shape, dtype, owner)
    return np.zeros(shape, dtype)


def _no_room(path: Path, nbytes: int, why: str, error: OSError) -> OSError:
    """The error for a temporary file that could not be written (removed first): what,
    where, and the fix."""
    path.unlink(missing_ok=True)
    return OSError(
        f"Could not write {nbytes:,} bytes to {path} {why} ({error}). Free space in "
        f"{path.parent.parent}, or set TMPDIR to a folder with room before starting Python."
    )


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
