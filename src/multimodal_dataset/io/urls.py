"""Paths and URLs alike: which protocol a path has, whether it is read through fsspec,
and joining, parents and the lexical "inside the root" rule for both kinds."""

from __future__ import annotations

import os
import posixpath
import re

from multimodal_dataset.io.files import is_inside

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]+)://")


def protocol_of(path: str) -> str | None:
    """The protocol of a URL (``"s3"``), or None for a plain path."""
    match = _URL.match(path)
    return match.group(1).lower() if match else None


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL (``scheme://...``), local ``file://`` included."""
    return protocol_of(path) is not None


def is_remote(path: str) -> bool:
    """Whether ``path`` is read through fsspec: a URL other than ``file://``."""
    return protocol_of(path) not in (None, "file", "local")


def local_path(path: str) -> str:
    """``path`` without a ``file://`` prefix (other paths unchanged)."""
    if protocol_of(path) in ("file", "local"):
        return path.split("://", 1)[1]
    return path


def join(folder: str, path: str) -> str:
    """``path`` relative to ``folder`` (a URL or a local folder); URLs and absolute paths
    are returned as they are."""
    if is_url(path):
        return path
    if is_remote(folder):
        if path.startswith("/"):
            return path
        return posixpath.join(folder, path)
    return os.path.join(folder, path)


def parent(path: str) -> str:
    """The folder of a URL or a local path (a local path is made absolute)."""
    if is_remote(path):
        return posixpath.dirname(path.rstrip("/"))
    return os.path.dirname(os.path.abspath(local_path(path)))


def absolute(path: str) -> str:
    """A URL as it is; a local path (or ``file://`` URL) made absolute."""
    return path if is_remote(path) else os.path.abspath(local_path(path))


def inside(given: str, joined: str, root: str) -> bool:
    """Whether the path ``given`` (``joined`` to ``root``) stays inside ``root``: a URL
    root, or a local folder (see `files.is_inside`). A URL is never inside a local root."""
    if is_url(given) or is_remote(root):
        return is_inside_url(given, joined, root)
    return is_inside(given, joined, root)


def is_inside_url(given: str, joined: str, root: str) -> bool:
    """Whether ``given`` (``joined`` to the URL ``root``) stays inside ``root``,
    lexically: ``..`` may not climb out of it."""
    if not is_url(given) and not given.startswith("/") and ".." not in given:
        return True
    if protocol_of(joined) != protocol_of(root):
        return False
    scheme = f"{protocol_of(root)}://"
    full = posixpath.normpath(joined[len(scheme) :])
    base = posixpath.normpath(root[len(scheme) :])
    return full == base or full.startswith(base.rstrip("/") + "/")
