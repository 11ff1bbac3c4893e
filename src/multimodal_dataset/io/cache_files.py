"""What every cache of decoded or tokenized values shares: its errors, the lock its
folder is made under, and the messages that explain an unusable folder."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path


class CacheError(OSError):
    """A cache directory cannot be used (not writable, full, or not a cache of ours)."""


class CacheWarning(UserWarning):
    """Cached records failed their checksum and were decoded again."""


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (fcntl), held for the block."""
    import fcntl

    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)  # no planted link
    with os.fdopen(fd, "a") as file:
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
