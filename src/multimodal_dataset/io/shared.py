"""Per-sample arrays that cross into worker processes as files, never as copies.

`MappedFile` pickles a file-backed memory map as its path and layout (pickling an
``np.memmap`` would copy its contents); `shareable` turns a large in-memory array into one,
by writing it once to a temporary file (`io.spilled`). `Strings` holds per-sample strings
(image paths) as two such arrays instead of a Python object each.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from multimodal_dataset.io.spilled import SPILL_MIN_BYTES, spill


@dataclass(frozen=True)
class MappedFile:
    """A file-backed, read-only memory map, pickled as its path and layout."""

    filename: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    offset: int
    order: str

    @staticmethod
    def of(array: Any) -> MappedFile | None:
        """The map ``array`` is, if it is a whole file's (None for anything else)."""
        # Only whole-file maps (np.load(mmap_mode=...), np.memmap(...)): their base is the
        # mmap itself. Views of a map (slices) keep the parent's offset, so they pickle as
        # arrays.
        if not (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)):
            return None
        if array.filename is None:
            return None
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        return MappedFile(array.filename, array.dtype, array.shape, array.offset, order)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_open_mapped, (self.filename, self.dtype, self.shape, self.offset, self.order))


def _open_mapped(
    filename: str, dtype: np.dtype[Any], shape: tuple[int, ...], offset: int, order: Any
) -> Any:
    return np.memmap(filename, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)


def shareable(owner: Any, name: str, array: Any) -> Any:
    """What to pickle for ``owner``'s ``array`` (its attribute ``name``): the file of a
    memory map, a temporary file holding a large in-memory array (written once per array
    object, kept in ``owner._shared``), or the array itself when it is small or not numeric.
    """
    mapped = MappedFile.of(array)
    if mapped is not None:
        return mapped
    if (
        not isinstance(array, np.ndarray)
        or array.nbytes < SPILL_MIN_BYTES
        or array.dtype.hasobject
        or array.dtype.kind not in "biufc"
    ):
        return array
    shared = owner.__dict__.setdefault("_shared", {})
    cached = shared.get(name)
    if cached is None or cached[0] is not array:
        cached = shared[name] = (array, MappedFile.of(spill(array, owner)))
    return cached[1]


def shareable_state(owner: Any, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """``state`` (by default ``owner.__dict__``) for pickling: every large numeric array
    as a file (`shareable`), without the record of what was written."""
    owner.__dict__.setdefault("_shared", {})
    items = [(k, v) for k, v in (owner.__dict__ if state is None else state).items()]
    return {k: shareable(owner, k, v) for k, v in items if k != "_shared"}


class Strings(Sequence[str]):
    """Per-sample strings as one UTF-8 buffer and their end offsets: no Python object per
    string (a list of a million paths holds about 100 MB of them), and pickled to a worker
    as two shared files (`shareable`) once they are large.

    Args:
        data: The strings' UTF-8 bytes, one after the other (``uint8``).
        ends: Where each string ends in ``data`` (``int64``, non-decreasing).
    """

    def __init__(self, data: np.ndarray, ends: np.ndarray) -> None:
        self.data = data
        self.ends = ends

    @classmethod
    def of(cls, values: Iterable[str]) -> Strings:
        """The strings of ``values``, encoded as UTF-8."""
        encoded = [v.encode("utf-8", "surrogateescape") for v in values]
        ends = np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), dtype=np.int64)
        return cls(np.frombuffer(b"".join(encoded), np.uint8), ends)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"string {index} of {len(self)}")
        start = int(self.ends[index - 1]) if index else 0
        return bytes(self.data[start : int(self.ends[index])]).decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Strings):
            return np.array_equal(self.ends, other.ends) and np.array_equal(self.data, other.data)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Strings({len(self)} strings, {self.data.nbytes} bytes)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Strings, (shareable(self, "data", self.data), shareable(self, "ends", self.ends)))


def as_strings(values: Sequence[str] | Strings) -> Strings:
    """``values`` as `Strings` (as they are when they already are)."""
    return values if isinstance(values, Strings) else Strings.of(values)
