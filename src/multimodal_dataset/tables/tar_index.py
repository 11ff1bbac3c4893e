"""The index of a tar shard: each member's name, data offset and size, read from the tar
headers alone (the data is skipped, not read), and kept in a small JSON file in the cache
folder so that a shard is indexed once.

With the index, any sample's member is one ``pread`` away, so WebDataset shards get the
same exact per-sample order as every other source instead of streaming order.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import PurePosixPath
from typing import BinaryIO

from multimodal_dataset.files import check_regular_file, read_regular_file
from multimodal_dataset.storage import Storage, is_remote
from multimodal_dataset.tables.cache import cached_file, write_atomically

#: Bumped when the index layout changes.
INDEX_VERSION = 1
#: An index file is refused past this size (a shard of ~10 million members).
MAX_INDEX_BYTES = 1 << 30
#: A remote shard's headers are read in blocks of this size.
REMOTE_BLOCK_BYTES = 16 * 2**20

Member = tuple[str, int, int]  # name, data offset, size


def shard_index(
    path: str, cache_dir: str | os.PathLike[str] | None = None, storage: Storage | None = None
) -> list[Member]:
    """The regular-file members of the tar shard ``path``, in archive order, cached.

    A shard on remote storage (a URL, read through ``storage``) is read once from start
    to end in large blocks (its headers lie between its members), not member by member.

    Raises:
        ValueError: For a compressed, truncated or corrupt shard, naming it.
    """
    remote = is_remote(path)
    if not remote:
        check_regular_file(path, "a tar shard")
    storage = storage or Storage()
    cached = cached_file(
        path,
        "tar_index",
        f"{PurePosixPath(path).name[:60]}.json",
        INDEX_VERSION,
        cache_dir=cache_dir,
        storage=storage,
    )
    if cached.is_file():
        try:
            data = json.loads(read_regular_file(str(cached), MAX_INDEX_BYTES))
            return [(str(n), int(o), int(s)) for n, o, s in data["members"]]
        except (ValueError, KeyError, TypeError):
            pass  # unreadable: index again
    if remote:
        size = storage.identity(path)[0]
        with storage.open(path, block_size=REMOTE_BLOCK_BYTES) as f:
            members = _read_headers(f, path, size)
    else:
        with open(path, "rb") as f:
            members = _read_headers(f, path, os.stat(path).st_size)

    def write(temporary: str) -> None:
        with open(temporary, "w") as f:
            json.dump({"shard": path if remote else os.path.abspath(path), "members": members}, f)

    write_atomically(cached, write)
    return members


def _read_headers(f: BinaryIO, path: str, file_size: int) -> list[Member]:
    magic = f.read(6)
    if magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00":
        raise ValueError(
            f"Shard {path!r} is compressed; members of a compressed tar cannot be read by "
            "offset. Decompress it (gunzip), or write the shards uncompressed (.tar), "
            "as WebDataset and img2dataset do by default."
        )
    f.seek(0)
    members: list[Member] = []
    try:
        with tarfile.open(fileobj=f, mode="r:") as archive:
            for info in archive:
                if info.isfile():
                    members.append((info.name, info.offset_data, info.size))
    except (tarfile.TarError, EOFError) as error:
        raise ValueError(
            f"Shard {path!r} is not a readable tar file ({error}); it is corrupt or "
            "truncated. Write it again."
        ) from None
    for name, offset, size in members:
        if offset + size > file_size:
            raise ValueError(
                f"Shard {path!r} is truncated: member {name!r} needs {size:,} bytes at offset "
                f"{offset:,}, but the file is {file_size:,} bytes. Write it again."
            )
    return members


def split_key(name: str) -> tuple[str, str]:
    """WebDataset's key rule: ``("dir/000123", "seg.jpg")`` for ``"dir/000123.seg.jpg"``:
    the key is everything before the first dot of the file name, within its folder."""
    folder, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), (extension if dot else "")
