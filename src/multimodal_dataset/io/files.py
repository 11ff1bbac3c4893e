"""Reading files that come from elsewhere: regular files only, never more than a bound.

Manifests, images and saved preprocessing are data from elsewhere. A named pipe would block
``open`` forever, ``/dev/zero`` would be read until memory runs out, and a path with
``..`` may lead anywhere: every file the library reads goes through here.
"""

from __future__ import annotations

import errno
import os
import stat


class NotARegularFileError(OSError):
    """A path names a named pipe, a device, a socket or anything but a regular file."""


class FileTooLargeError(OSError):
    """A file is larger than the bound it is read with."""


class MissingDataError(ValueError):
    """A sample has no data where it should: no image bytes and no path, no tar member."""


class OutsideRootError(PermissionError):
    """A path leads outside the root folder it is confined to."""


def read_regular_file(path: str, max_bytes: int, *, follow_links: bool = True) -> bytes:
    """The contents of the regular file ``path``, refusing anything else.

    The file is opened without blocking (a named pipe would otherwise block ``open`` until
    a writer appears) and checked to be a regular file before anything is read, so FIFOs,
    devices such as ``/dev/zero`` and sockets are refused; at most ``max_bytes`` are read.

    With ``follow_links=False`` a symbolic link is refused too (files of a folder that
    must stay inside it, such as a cache's).

    Raises:
        FileNotFoundError, IsADirectoryError, NotARegularFileError, FileTooLargeError,
        OSError: What is wrong, naming the path.
    """
    fd = open_regular_file(path, follow_links=follow_links)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if info.st_size > max_bytes:
            raise FileTooLargeError(
                f"{path!r} has {info.st_size:,} bytes, more than max_file_bytes={max_bytes:,}; "
                "pass a larger max_file_bytes if it is a real file"
            )
        # Ask for the size fstat gave (plus one byte, to see growth), not for max_bytes:
        # Python allocates what is asked before reading, and a 256 MiB buffer per file is
        # an mmap and munmap per image, which serialises decoding threads.
        data = f.read(info.st_size + 1)
        if len(data) > info.st_size:  # it grew since fstat: read on, up to the bound
            data += f.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise FileTooLargeError(
            f"{path!r} grew past max_file_bytes={max_bytes:,} while it was read"
        )
    return data


def open_regular_file(path: str, *, follow_links: bool = True, write: bool = False) -> int:
    """A descriptor of the regular file ``path`` (read-only, or read-write with
    ``write``), refusing anything else.

    Opened without blocking (a named pipe would otherwise block ``open`` until a writer
    appears), then checked with ``fstat`` before anything is read, so FIFOs, devices and
    sockets are refused; with ``follow_links=False`` a symbolic link is refused as well.

    Raises:
        FileNotFoundError, IsADirectoryError, NotARegularFileError: Naming the path.
    """
    flags = os.O_RDWR if write else os.O_RDONLY
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP and not follow_links:
            raise NotARegularFileError(
                f"{path!r} is a symbolic link; only regular files are used there"
            ) from None
        raise
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode):
        return fd
    os.close(fd)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(f"{path!r} is a directory")
    raise NotARegularFileError(
        f"{path!r} is not a regular file ({_file_kind(info.st_mode)}); only regular files are read"
    )


def check_regular_file(path: str, what: str) -> None:
    """Refuses an existing path that is not a regular file, without opening it."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(
            f"Cannot read {path!r}: it is not a regular file (a folder, a named pipe or a "
            f"device). Pass the path of {what}."
        )


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def is_inside(given: str, joined: str, root: str) -> bool:
    """Whether the path ``given`` (``joined`` to ``root``) stays inside ``root``, lexically:
    ``..`` and absolute paths elsewhere leave it; symbolic links inside it are followed."""
    if not os.path.isabs(given) and ".." not in given:
        return True  # the common case, without normalising
    full = os.path.normpath(os.path.abspath(joined))
    return os.path.commonpath([full, root]) == root
