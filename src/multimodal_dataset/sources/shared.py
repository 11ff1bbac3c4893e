"""Per-sample arrays that cross into worker processes as files, never as copies.

`MappedFile` pickles a file-backed memory map as its path and layout (pickling an
``np.memmap`` would copy its contents); `shareable` turns a large in-memory array into one,
by writing it once to a temporary file (`io.spilled`).
"""

from __future__ import annotations

import mmap
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


def shareable_state(owner: Any) -> dict[str, Any]:
    """``owner.__dict__`` for pickling: every large numeric array as a file (`shareable`),
    without the record of what was written."""
    owner.__dict__.setdefault("_shared", {})
    items = [(k, v) for k, v in owner.__dict__.items() if k != "_shared"]
    return {k: shareable(owner, k, v) for k, v in items}
