"""`ImageBytes`: encoded images stored in a table (Parquet, Arrow, Hugging Face datasets),
decoded and resized a batch at a time.

Each sample's bytes are read from an `ArrowColumn` when its batch is gathered, so a table
whose images are larger than memory is never loaded whole. A ``{bytes, path}`` cell with
null bytes falls back to its path, read as `ImageFiles` reads files (regular files only,
bounded in size, inside ``root``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from multimodal_dataset._utils.checks import check_int
from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset.io.arrow_column import ArrowColumn
from multimodal_dataset.io.files import MissingDataError, OutsideRootError, read_regular_file
from multimodal_dataset.io.storage import Requests, Storage
from multimodal_dataset.io.storage_errors import MissingBucketError
from multimodal_dataset.io.urls import absolute, inside, is_remote, join, local_path
from multimodal_dataset.sources.arrays import class_names
from multimodal_dataset.sources.images.decoded_cache import CacheValidation
from multimodal_dataset.sources.images.decoding import ColorMode
from multimodal_dataset.sources.images.encoded import DEFAULT_MAX_FILE_BYTES, EncodedImages
from multimodal_dataset.sources.images.files import outside_message
from multimodal_dataset.sources.protocol import OnError

if TYPE_CHECKING:
    from multimodal_dataset.sources.images.augmentation import ImageAugmentation


@runtime_checkable
class EncodedColumn(Protocol):
    """Random access to encoded images: `ArrowColumn`, `TarMembers`, or your own."""

    def __len__(self) -> int: ...

    def get(self, row: int) -> tuple[bytes | None, str | None]:
        """The bytes and the path of ``row`` (either may be None)."""
        ...

    def describe(self, row: int) -> str:
        """Where ``row`` is stored, for messages."""
        ...


@runtime_checkable
class StoredColumn(Protocol):
    """An `EncodedColumn` that can say where a row's bytes are stored without reading
    them (`ArrowColumn` over files, `TarMembers`): the decoded cache keys a row by it."""

    def identity(self, row: int) -> bytes | None:
        """The storage identity of ``row``'s bytes (None: there is none; they are
        hashed)."""
        ...


class ImageBytes(EncodedImages):
    """Encoded images (JPEG, PNG, GIF, BMP, WebP bytes) decoded to one fixed size.

    Decoding is `ImageFiles`'s: JPEGs at a reduced DCT scale, EXIF orientation applied,
    RGB/grayscale/RGBA, resized with antialiasing, augmentation, ``on_error``. Only the
    requested batch's bytes are read.

    Example:

    ```python
    table = pyarrow.parquet.read_table("train.parquet")
    images = ImageBytes(table.column("image"), size=(64, 64))
    ds = MultimodalDataset((images, numbers), labels, batch_size=32)
    ```

    `from_table` builds one for an image column of bytes or ``{bytes, path}`` structs
    without reading the bytes into memory.

    ``color_mode``, ``dtype``, ``interpolation``, ``crop_to_aspect_ratio``, ``augment``,
    ``on_error``, ``num_threads`` and ``column`` are as for `ImageFiles`.

    Args:
        values: The encoded images: an `ArrowColumn` or other `EncodedColumn` (tar
            members), a pyarrow Array or ChunkedArray of binary or ``{bytes, path}``
            structs, or a sequence of ``bytes`` (or of ``{"bytes": ..., "path": ...}``
            dicts).
        size: ``(height, width)`` of every output image.
        rows: The row of ``values`` of each sample (default: sample i is row i); they
            are also named in messages.
        root: Folder that the paths of ``{bytes, path}`` cells with null bytes are
            relative to, and may not leave unless ``allow_outside_root``. Without it,
            such paths are used as given.
            ``root`` may be a URL (``s3://bucket/images``): see ``storage``.
        max_file_bytes: Larger files (of the path fallback) are refused.
        storage_options: Options of the file system that reads URLs (credentials,
            ``endpoint_url``), as in pandas.
        cache: A directory to keep each decoded image in, as for `ImageFiles`; a sample
            is keyed by where its bytes are stored (the Arrow file's or tar shard's
            identity and the row or member offset: nothing read to check it), or, for a
            table in memory, by a hash of its bytes.
        cache_validation: ``"run"``, ``"epoch"`` or ``"trust"``, as for `ImageFiles`
            (``"trust"`` reads no bytes of a cached sample).
        value_range: The range of the float values, as for `ImageFiles`: ``(0, 1)``
            (the default), ``(0, 255)`` or ``(-1, 1)``.

    Raises:
        TypeError: For values that are neither image bytes nor ``{bytes, path}`` structs.
    """

    def __init__(
        self,
        values: Any,
        size: tuple[int, int],
        *,
        rows: Sequence[int] | np.ndarray | None = None,
        root: str | os.PathLike[str] | None = None,
        allow_outside_root: bool = False,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        storage_options: Mapping[str, Any] | None = None,
        color_mode: ColorMode = "rgb",
        dtype: str | None = None,
        value_range: tuple[float, float] | None = None,
        interpolation: str = "bilinear",
        crop_to_aspect_ratio: bool = False,
        augment: ImageAugmentation | None = None,
        on_error: OnError = "raise",
        num_threads: int | None = None,
        column: str | None = None,
        cache: str | os.PathLike[str] | None = None,
        cache_validation: CacheValidation = "run",
    ) -> None:
        self.values = as_encoded_column(values, column)
        count = len(self.values) if rows is None else len(rows)
        super().__init__(
            count,
            size,
            color_mode=color_mode,
            dtype=dtype,
            value_range=value_range,
            interpolation=interpolation,
            crop_to_aspect_ratio=crop_to_aspect_ratio,
            augment=augment,
            on_error=on_error,
            num_threads=num_threads,
            rows=rows,
            column=column,
            cache=cache,
            cache_validation=cache_validation,
        )
        if (
            self.rows is not None
            and len(self.rows)
            and (self.rows.min() < 0 or self.rows.max() >= len(self.values))
        ):
            raise ValueError(
                f"ImageBytes: rows must be row numbers of the {len(self.values)} values; "
                f"got rows from {self.rows.min()} to {self.rows.max()}."
            )
        self.root = None if root is None else absolute(os.fspath(root))
        self._remote = getattr(self.values, "remote", False) or bool(
            self.root and is_remote(self.root)
        )
        self.storage = (
            getattr(self.values, "storage", None) or Storage(storage_options)
            if self._remote or storage_options
            else None
        )
        self.allow_outside_root = bool(allow_outside_root)
        self.max_file_bytes = check_int(max_file_bytes, "max_file_bytes")

    def __repr__(self) -> str:
        return (
            f"ImageBytes({self.count} images from {self.values!r}, size={self.size}, "
            f"color_mode={self.color_mode!r}, dtype={self._dtype.name!r})"
        )

    def _row(self, sample: int) -> int:
        return int(self.rows[sample]) if self.rows is not None else sample

    def read(self, sample: int) -> bytes:
        """The encoded bytes of ``sample``'s image: the cell's bytes, or the file at its path."""
        found = self._locate(sample)
        return found if isinstance(found, bytes) else self._read_path(found)

    def read_many(
        self, samples: Sequence[int], requests: Requests | None = None
    ) -> list[bytes | Exception] | None:
        """Remote members and remote path fallbacks of a batch, fetched together."""
        if not self._remote:
            return None
        if getattr(self.values, "remote", False) and hasattr(self.values, "get_many"):
            rows = [self._row(s) for s in samples]
            fetched: list[bytes | Exception] = self.values.get_many(rows, requests)
            return [_no_bytes("empty") if data == b"" else data for data in fetched]
        found: list[bytes | str | Exception] = []
        for sample in samples:
            try:
                found.append(self._locate(sample))
            except Exception as error:
                found.append(error)
        urls = [i for i, f in enumerate(found) if isinstance(f, str) and is_remote(f)]
        storage = self.storage or Storage()
        fetched = storage.read_many([str(found[i]) for i in urls], self.max_file_bytes, requests)
        for i, data in zip(urls, fetched, strict=True):
            found[i] = self._missing_path(str(found[i])) if _is_missing(data) else data
        results: list[bytes | Exception] = []
        for item in found:
            if isinstance(item, str):
                try:
                    item = self._read_path(item)
                except Exception as error:
                    item = error
            results.append(item)
        return results

    def _locate(self, sample: int) -> bytes | str:
        """The sample's bytes, or the path (or URL) to read them from."""
        data, path = self.values.get(self._row(sample))
        if data:
            return data
        if not path:
            raise _no_bytes("empty" if data is not None else "null")
        joined = local_path(join(self.root, path)) if self.root else path
        if self.root and not self.allow_outside_root and not inside(path, joined, self.root):
            raise OutsideRootError(outside_message(path, self.root))
        return joined

    def _read_path(self, path: str) -> bytes:
        try:
            if is_remote(path):
                return (self.storage or Storage()).read(path, self.max_file_bytes)
            return read_regular_file(path, self.max_file_bytes)
        except FileNotFoundError as error:
            if isinstance(error, MissingBucketError):
                raise
            raise self._missing_path(path) from None

    @staticmethod
    def _missing_path(path: str) -> MissingDataError:
        return MissingDataError(f"its image bytes are null and its path {path!r} does not exist")

    def identity(self, sample: int) -> bytes:
        """Where the sample's bytes are stored (the file or object, and the row or member
        offset in it) when the column can tell (see `StoredColumn`): a new run checks its
        cache without reading, downloading or hashing any image. Otherwise the bytes."""
        if isinstance(self.values, StoredColumn):
            stored = self.values.identity(self._row(sample))
            if stored is not None:
                return b"stored\0" + stored
        return super().identity(sample)

    def where(self, sample: int) -> str:
        """Names ``sample's image in messages: where its table stores it (row, file)."""
        return f"the image in {self.values.describe(self._row(sample))}"

    def close(self) -> None:
        """Stops the decoding threads and closes the files the column holds open."""
        super().close()
        close = getattr(self.values, "close", None)
        if close is not None:
            close()


def _no_bytes(empty: str) -> MissingDataError:
    return MissingDataError(
        f"its image bytes are {empty} and it has no path to fall back to; fill the cell, or "
        "drop the row"
    )


def _is_missing(data: bytes | Exception) -> bool:
    return isinstance(data, FileNotFoundError) and not isinstance(data, MissingBucketError)


def as_encoded_column(values: Any, column: str | None = None) -> EncodedColumn:
    """An `EncodedColumn` of ``values``: itself, a pyarrow (Chunked)Array, or a sequence."""
    if isinstance(values, EncodedColumn) and not isinstance(values, (list, tuple)):
        return values
    pa = optional_import("pyarrow", "Reading images stored as bytes")
    kinds = class_names(values)
    if "pyarrow.ChunkedArray" in kinds or "pyarrow.Array" in kinds:
        array = values
    elif isinstance(values, (bytes, str, os.PathLike)):
        raise TypeError(
            "ImageBytes takes one encoded image per sample; got a single "
            f"{type(values).__name__}. Pass a list: ImageBytes([data], size)."
        )
    else:
        array = pa.array(list(values))
        if array.type == pa.null():  # every value None: still bytes, all missing
            array = array.cast(pa.binary())
    name = column or "image"
    return ArrowColumn.from_table(pa.table({name: array}), name)
