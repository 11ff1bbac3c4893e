"""The index of a tar shard: each member's name, data offset and size, read from the tar
headers alone (the data is skipped, not read), and kept in a small JSON file in the cache
folder so that a shard is indexed once.

With the index, any sample's member is one ``pread`` away, so WebDataset shards get the
same exact per-sample order as every other source instead of streaming order.
"""

from __future__ import annotations

import errno
import json
import os
import tarfile
from pathlib import PurePosixPath
from typing import BinaryIO

from multimodal_dataset.io.cache_folder import cached_file, write_atomically
from multimodal_dataset.io.files import check_regular_file, read_regular_file
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.urls import is_remote

#: Bumped when the index layout changes.
INDEX_VERSION = 2
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
    cached, reusable = cached_file(
        path,
        "tar_index",
        f"{PurePosixPath(path).name[:60]}.json",
        INDEX_VERSION,
        cache_dir=cache_dir,
        storage=storage,
    )
    if reusable and cached.is_file():
        try:
            data = json.loads(read_regular_file(str(cached), MAX_INDEX_BYTES))
            return [(str(n), int(o), int(s)) for n, o, s in data["members"]]
        except (ValueError, KeyError, TypeError):
            pass  # unreadable: index again
    if remote:
        size = storage.identity(path)[0]

        def index() -> list[Member]:
            with storage.open(path, block_size=REMOTE_BLOCK_BYTES) as f:
                return _read_headers(f, path, size, remote=True)

        # The headers are read through a file object: a failure mid-way (a server error,
        # a dropped connection) is retried like any read and named with the URL.
        members: list[Member] = storage.retrying(path, index)
    else:
        with open(path, "rb") as f:
            members = _read_headers(f, path, os.stat(path).st_size)

    def write(temporary: str) -> None:
        with open(temporary, "w") as f:
            json.dump({"shard": path if remote else os.path.abspath(path), "members": members}, f)

    write_atomically(cached, write)
    return members


def _read_headers(f: BinaryIO, path: str, file_size: int, remote: bool = False) -> list[Member]:
    try:
        return _headers(f, path, file_size)
    except ValueError as error:
        if remote and "Cannot seek streaming" in str(error):
            raise ValueError(
                f"Shard {path!r} cannot be indexed: the server does not support range "
                "requests (it sends no Content-Length or ignores Range), so members cannot "
                "be read by offset. Serve the shards from a server or store that does "
                "(S3, GCS, nginx, Python's http.server), or copy them to a local disk."
            ) from None
        raise


def _headers(f: BinaryIO, path: str, file_size: int) -> list[Member]:
    magic = f.read(6)
    if magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00":
        raise ValueError(
            f"Shard {path!r} is compressed; members of a compressed tar cannot be read by "
            "offset. Decompress it (gunzip), or write the shards uncompressed (.tar), "
            "as WebDataset and img2dataset do by default."
        )
    f.seek(0)
    members: list[Member] = []
    regular: dict[str, Member] = {}
    info = None
    try:
        with tarfile.open(fileobj=f, mode="r:") as archive:
            for info in archive:
                if info.offset_data + max(info.size, 0) > file_size:
                    raise ValueError(
                        f"Shard {path!r} is truncated or corrupt: member {info.name!r} needs "
                        f"{info.size:,} bytes at offset {info.offset_data:,}, but the file is "
                        f"{file_size:,} bytes. Write it again."
                    )
                if info.isfile():
                    member = (info.name, info.offset_data, info.size)
                    regular[info.name] = member
                    members.append(member)
                elif info.islnk():  # a hard link: the data of an earlier member
                    target = regular.get(info.linkname)
                    if target is None:
                        raise ValueError(
                            f"Shard {path!r}: member {info.name!r} is a hard link to "
                            f"{info.linkname!r}, which is not a file earlier in the shard. "
                            "Write the shard again without links (tar --hard-dereference)."
                        )
                    members.append((info.name, target[1], target[2]))
                elif info.issym():
                    raise ValueError(
                        f"Shard {path!r}: member {info.name!r} is a symbolic link (to "
                        f"{info.linkname!r}); a shard's samples must be files inside it. "
                        "Write the shard again with the files themselves (tar --dereference)."
                    )
            end = archive.offset
    except (tarfile.TarError, EOFError, OSError) as error:
        if isinstance(error, OSError) and error.errno != errno.EINVAL:
            raise  # a failed read (remote: retried by the caller), not a bad archive
        where = f" after member {info.name!r}" if info is not None else ""
        raise ValueError(
            f"Shard {path!r} is not a readable tar file{where} ({error}); it is corrupt or "
            "truncated. Write it again."
        ) from None
    # An archive ends with zero blocks: without one, the file was cut after a member
    # (an interrupted copy) and the samples after it are lost.
    f.seek(end)
    marker = f.read(tarfile.BLOCKSIZE)
    if len(marker) < tarfile.BLOCKSIZE or marker.count(0) != tarfile.BLOCKSIZE:
        last = f" after member {members[-1][0]!r}" if members else ""
        raise ValueError(
            f"Shard {path!r} is truncated: it ends at byte {end:,}{last} without the "
            "end-of-archive marker, so the members that followed are missing (an "
            "interrupted copy or download). Copy or write the shard again."
        )
    return members


def split_key(name: str) -> tuple[str, str]:
    """WebDataset's key rule: ``("dir/000123", "seg.jpg")`` for ``"dir/000123.seg.jpg"``:
    the key is everything before the first dot of the file name, within its folder."""
    folder, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), (extension if dot else "")
