"""`cached_tokens`: a text source's token ids kept on disk (``TextTokens(cache=...)``), so
that a run with the same texts and tokenizer skips tokenizing (and fitting).

One folder per *fingerprint* (a hash of every text, the vocabulary or tokenizer, or how
one is fitted, the length and the cache format) holds

- ``ids.npy``: the ``(texts, length)`` ``int32`` ids, memory-mapped when read;
- ``lengths.npy``: each text's length in ids before truncation;
- ``meta.json``: the fingerprint, the fitted vocabulary or tokenizer (when this source
  fitted one), and the CRC-32 of the ids, checked when the folder is opened.

A folder is written whole into a temporary folder and renamed into place, under a file
lock, so a reader never sees half of one and two processes never both fill it; a
damaged folder is reported (`CacheWarning`) and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multimodal_dataset.io.cache_files import CacheError, CacheWarning, explain, locked
from multimodal_dataset.io.files import NotARegularFileError, read_regular_file

#: Bumped whenever what a folder holds changes; part of every fingerprint.
TOKEN_CACHE_FORMAT = 1
_META = "meta.json"
#: The meta file (the fingerprint and the fitted vocabulary or tokenizer) is refused past
#: this size rather than read whole.
MAX_META_BYTES = 256 << 20


@dataclass
class Tokenized:
    """What tokenizing the texts gave: ids, lengths, and what was fitted to get them.

    Attributes:
        ids: ``(texts, length)`` ``int32`` ids, padded with 0.
        lengths: Each text's length in ids before truncation.
        fitted: The vocabulary's tokens (``{"vocabulary": [...]}``) or the trained
            tokenizer's JSON (``{"tokenizer": "..."}``) when they were fitted on these
            texts; empty otherwise.
    """

    ids: np.ndarray
    lengths: np.ndarray
    fitted: dict[str, Any]


class TextsDigest:
    """A hash of every text, in order (each length-prefixed), fed a chunk at a time, and
    of which were bad."""

    def __init__(self) -> None:
        self._digest = hashlib.blake2b(digest_size=16)

    def update(self, strings: Iterable[str]) -> None:
        for text in strings:
            data = text.encode("utf-8", "surrogatepass")
            self._digest.update(len(data).to_bytes(8, "little"))
            self._digest.update(data)

    def hexdigest(self, problems: Iterable[int]) -> str:
        digest = self._digest.copy()
        digest.update(json.dumps(sorted(problems)).encode())
        return digest.hexdigest()


def texts_digest(strings: Iterable[str], problems: Iterable[int]) -> str:
    """A hash of every text, in order (each length-prefixed), and of which were bad."""
    digest = TextsDigest()
    digest.update(strings)
    return digest.hexdigest(problems)


def cached_tokens(
    root: str | os.PathLike[str],
    fingerprint: Mapping[str, Any],
    tokenize: Callable[[], Tokenized],
) -> Tokenized:
    """The token ids for ``fingerprint`` from the cache in ``root``, or ``tokenize()``'s,
    stored there first.

    Raises:
        CacheError: When the cache directory cannot be written (not writable, full), or
            its folder for this fingerprint holds another cache.
    """
    meta = {"format": TOKEN_CACHE_FORMAT, **fingerprint}
    key = hashlib.blake2b(json.dumps(meta, sort_keys=True).encode(), digest_size=8).hexdigest()
    folder = Path(os.fspath(root)).expanduser().absolute() / f"tokens-{key}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with locked(folder.parent / f".{folder.name}.lock"):
            if folder.exists():
                found = _read(folder, meta)
                if found is not None:
                    return found
                shutil.rmtree(folder)
            result = tokenize()
            _write(folder, meta, result)
    except CacheError:
        raise
    except OSError as error:
        raise CacheError(explain(error, folder)) from error
    return _read(folder, meta) or result


def _write(folder: Path, meta: Mapping[str, Any], result: Tokenized) -> None:
    temporary = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        ids = np.ascontiguousarray(result.ids, dtype=np.int32)
        np.save(temporary / "ids.npy", ids)
        np.save(temporary / "lengths.npy", np.asarray(result.lengths, dtype=np.int64))
        content = {**meta, "fitted": result.fitted, "crc32": zlib.crc32(ids.data)}
        (temporary / _META).write_text(json.dumps(content, sort_keys=True))
        os.replace(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _read(folder: Path, meta: Mapping[str, Any]) -> Tokenized | None:
    """The folder's contents, or None (after a `CacheWarning`) when it is damaged."""
    try:
        for name in ("ids.npy", "lengths.npy"):  # files of the folder, never links out of it
            if (folder / name).is_symlink() or not (folder / name).is_file():
                raise NotARegularFileError(f"{str(folder / name)!r} is not a regular file")
        meta_bytes = read_regular_file(str(folder / _META), MAX_META_BYTES, follow_links=False)
        content = json.loads(meta_bytes)
        if {k: v for k, v in content.items() if k not in ("fitted", "crc32")} != dict(meta):
            raise CacheError(
                f"The cache folder {folder} holds a different cache than its name says "
                f"({folder / _META}). Delete the folder and it is filled again."
            )
        ids = np.load(folder / "ids.npy", mmap_mode="r")
        lengths = np.load(folder / "lengths.npy")
        if zlib.crc32(np.ascontiguousarray(ids).data) != content["crc32"]:
            raise ValueError("the token ids fail their checksum")
        if lengths.shape != ids.shape[:1]:
            raise ValueError("the lengths do not match the ids")
    except CacheError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        warnings.warn(
            f"The cached token ids in {folder} are damaged ({error}); the texts are "
            "tokenized again and the folder rewritten.",
            CacheWarning,
            stacklevel=5,
        )
        return None
    return Tokenized(ids, lengths, content["fitted"])
