"""The cache folder: files derived from a table's files (memory-mappable image columns,
tar shard indexes), each named by a digest of its source's path, size and modification
time, so it is made once and made again when the source changes.

The folder is ``cache_dir``, else ``$MULTIMODAL_DATASET_CACHE``, else
``$XDG_CACHE_HOME/multimodal_dataset`` (``~/.cache/multimodal_dataset``), with one
subfolder per kind of file. It may be deleted at any time; it is rebuilt when needed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.urls import is_remote

CacheDir = str | os.PathLike[str] | None


def cache_folder(cache_dir: CacheDir = None, kind: str = "arrow") -> Path:
    """The folder that derived files of ``kind`` are kept in (see the module docstring)."""
    if cache_dir is not None:
        base = Path(cache_dir)
    elif os.environ.get("MULTIMODAL_DATASET_CACHE"):
        base = Path(os.environ["MULTIMODAL_DATASET_CACHE"])
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = Path(xdg) / "multimodal_dataset"
    return base / kind


def cached_file(
    source: str,
    kind: str,
    name: str,
    *key: object,
    cache_dir: CacheDir,
    storage: Storage | None = None,
) -> tuple[Path, bool]:
    """Where the file ``name`` derived from ``source`` is cached, and whether a file found
    there may be reused: its digest covers the source's absolute path (or URL), size and
    modification time (or ETag, checksum, Last-Modified), and ``key`` (a column, a
    version). ``storage`` reads a URL's size and version.

    A remote object whose store gives no version (an HTTP server without ETag or
    Last-Modified) could be replaced by another of the same size unnoticed: its derived
    file is made again on every run, never reused.
    """
    reusable = True
    if is_remote(source):
        size, version = (storage or Storage()).identity(source)
        where: tuple[object, ...] = (source, size, version)
        reusable = bool(version)
    else:
        info = os.stat(source)
        where = (os.path.abspath(source), info.st_size, info.st_mtime_ns)
    identity = "\0".join(map(str, (*where, *key)))
    digest = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    stem, dot, suffix = name.rpartition(".")
    return cache_folder(cache_dir, kind) / f"{stem}.{digest}{dot}{suffix}", reusable


def write_atomically(target: Path, write: Callable[[str], None]) -> None:
    """Calls ``write(temporary_path)``, then renames the file to ``target``: readers, and
    other processes writing the same file, see the whole file or none."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(
        prefix=f".{target.name[:40]}.", suffix=".tmp", dir=target.parent
    )
    os.close(fd)
    try:
        write(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
