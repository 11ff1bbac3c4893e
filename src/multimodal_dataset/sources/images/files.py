"""`ImageFiles`: image files on disk, decoded and resized a batch at a time, no TensorFlow.

Decoding, threads, augmentation and scaling are shared with every source of encoded
images (see ``encoded_images``); this module says where a sample's bytes come from: its
file. Files are data from elsewhere: only regular files are read (a named pipe or a device
is refused without being opened for reading), no file is read past ``max_file_bytes``, and
with ``root`` set a path may not leave it (absolute paths and ``..`` are refused unless
``allow_outside_root=True``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from multimodal_dataset._utils.checks import check_int
from multimodal_dataset.io.files import OutsideRootError, read_regular_file
from multimodal_dataset.io.shared import Strings
from multimodal_dataset.io.storage import Requests, Storage
from multimodal_dataset.io.urls import absolute, inside, is_remote, join, local_path
from multimodal_dataset.sources.images.decoded_cache import CacheValidation
from multimodal_dataset.sources.images.decoding import ColorMode
from multimodal_dataset.sources.images.encoded import DEFAULT_MAX_FILE_BYTES, EncodedImages
from multimodal_dataset.sources.protocol import OnError, SampleError

if TYPE_CHECKING:
    from multimodal_dataset.sources.images.augmentation import ImageAugmentation

__all__ = ["DEFAULT_MAX_FILE_BYTES", "ImageFiles", "outside_message"]


class ImageFiles(EncodedImages):
    """Image files decoded, converted and resized to one fixed size, a batch at a time.

    Every image becomes ``size + (channels,)``: converted to RGB (or grayscale, or RGBA),
    resized with antialiasing (optionally after a centre crop to the target aspect
    ratio), and scaled to ``[0, 1]`` as ``keras.config.floatx()``, or kept as ``uint8``
    0-255 on request (for a model that rescales itself). Only the files of the requested
    batch are read. A batch's files are decoded in parallel, in the dataset's decoding
    threads (``MultimodalDataset(threads_per_worker=...)``).

    Example:

    ```python
    images = ImageFiles(["a.jpg", "b.png"], size=(64, 64))
    ds = MultimodalDataset((images, token_ids, numbers), labels, batch_size=32)
    ```

    Args:
        paths: One image file path per sample.
        size: ``(height, width)`` of every output image.
        root: Folder that relative paths are relative to (default: the working directory);
            a local folder or a URL (``s3://bucket/images``).
        color_mode: ``"rgb"`` (3 channels), ``"grayscale"`` (1) or ``"rgba"`` (4).
        dtype: ``None`` for ``keras.config.floatx()`` in ``[0, 1]``, or ``"uint8"``.
        value_range: The range of the float values: ``(0, 1)`` (the default), ``(0, 255)``
            (what ``keras.applications.*.preprocess_input`` expects) or ``(-1, 1)``
            (MobileNet, EfficientNetV2 without its own rescaling); any ``(low, high)``
            maps 0 to ``low`` and 255 to ``high``. With ``dtype="uint8"``: 0-255 only.
        interpolation: Resampling filter: ``"bilinear"``, ``"nearest"``, ``"bicubic"``,
            ``"lanczos"``, ``"box"`` or ``"hamming"``.
        crop_to_aspect_ratio: Centre-crop each image to the aspect ratio of ``size``
            before resizing, instead of stretching it.
        augment: An `ImageAugmentation` applied per sample, drawn from the dataset's seed,
            the epoch and the sample index. Use it for training data only.
        on_error: ``"raise"`` to stop at a missing, corrupt or truncated file with a
            `SampleError`, or ``"replace"`` to use an all-zero image and report it.
        num_threads: At most this many of the dataset's decoding threads decode one batch
            (each takes a share of it); None (the default) uses all of them.
        rows: Table row of each sample, named in error messages (set by `from_table`).
        column: Table column of the paths, named in error messages.
        allow_outside_root: With ``root`` set, paths must stay inside it: absolute paths
            elsewhere and ``..`` escapes are bad samples (an error, or replaced with
            ``on_error="replace"``). Pass True if you trust every path. Without ``root``
            paths are used as given.
        max_file_bytes: Files larger than this are refused rather than read into memory.
        storage_options: Options of the file system that reads paths that are URLs
            (``s3://bucket/a.jpg``, or relative paths under a URL ``root``): credentials,
            ``endpoint_url``, as in pandas. A batch's remote files are fetched together.
        cache: A directory to keep each decoded, resized, un-augmented image in (as
            ``uint8``, memory-mapped), filled as samples are first read: later epochs and
            runs skip reading and decoding them, and augmentation still draws anew each
            epoch. Keyed by the output size, colour mode, interpolation, crop and
            decoder versions, and per sample by the file's path, size and modification time (a
            URL's size and ETag or other version, not downloaded): a change is decoded
            again, never served stale. Its size is ``count * height * width * channels``
            bytes, allocated when the source is built.
        cache_validation: How a cached image is checked against its original: ``"run"``
            (the default) takes each original's identity once per run, ``"epoch"`` once
            per epoch (a file rewritten during training is decoded again), ``"trust"``
            serves every filled record without touching the originals (offline or
            remote originals, after ``multimodal-dataset cache`` filled the cache).

    Raises:
        ValueError: For a bad ``size``, ``color_mode``, ``dtype`` or ``interpolation``.
        ImportError: If Pillow is not installed.
        CacheError: If ``cache`` cannot be used (not writable, not enough space).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]] | np.ndarray,
        size: tuple[int, int],
        *,
        root: str | os.PathLike[str] | None = None,
        color_mode: ColorMode = "rgb",
        dtype: str | None = None,
        value_range: tuple[float, float] | None = None,
        interpolation: str = "bilinear",
        crop_to_aspect_ratio: bool = False,
        augment: ImageAugmentation | None = None,
        on_error: OnError = "raise",
        num_threads: int | None = None,
        rows: Sequence[int] | np.ndarray | None = None,
        column: str | None = None,
        allow_outside_root: bool = False,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        storage_options: Mapping[str, Any] | None = None,
        cache: str | os.PathLike[str] | None = None,
        cache_validation: CacheValidation = "run",
    ) -> None:
        if isinstance(paths, (str, os.PathLike)):
            raise TypeError(
                f"ImageFiles takes one path per sample; got the single path {paths!r}. To "
                "read a folder, list it first: sorted(pathlib.Path(folder).glob('*.jpg'))."
            )
        folder = os.fspath(root) if root is not None else None
        given = [os.fspath(p) for p in paths]
        joined = [local_path(join(folder, p) if folder else p) for p in given]
        remote = any(is_remote(p) for p in joined)
        self.paths = Strings.of(joined)  # two arrays, not a Python string per sample
        del joined
        super().__init__(
            len(self.paths),
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
        self.max_file_bytes = check_int(max_file_bytes, "max_file_bytes")
        self.root = None if folder is None else absolute(folder)
        self.allow_outside_root = bool(allow_outside_root)
        self._remote = remote
        self.storage = Storage(storage_options) if self._remote or storage_options else None
        self._outside: dict[int, str] = {}
        if self.root is not None and not self.allow_outside_root:
            self._outside = {
                i: p for i, p in enumerate(given) if not inside(p, self.paths[i], self.root)
            }
            if self._outside and self.on_error == "raise":
                sample = min(self._outside)
                more = len(self._outside) - 1
                also = f" ({more} more path{'s' if more > 1 else ''} also outside)" if more else ""
                problem = outside_message(self._outside[sample], self.root)
                raise SampleError(f"ImageFiles: {self.describe(sample)}: {problem}{also}.")

    def __repr__(self) -> str:
        return (
            f"ImageFiles({len(self.paths)} files, size={self.size}, "
            f"color_mode={self.color_mode!r}, dtype={self._dtype.name!r})"
        )

    def read(self, sample: int) -> bytes:
        """The bytes of ``sample``'s file: a regular file inside the root, bounded in size."""
        if sample in self._outside:
            raise OutsideRootError(outside_message(self._outside[sample], str(self.root)))
        path = self.paths[sample]
        if is_remote(path):
            return (self.storage or Storage()).read(path, self.max_file_bytes)
        return read_regular_file(path, self.max_file_bytes)

    def read_many(
        self, samples: Sequence[int], requests: Requests | None = None
    ) -> list[bytes | Exception] | None:
        """A batch's remote files, fetched together (see ``storage``)."""
        if not self._remote:
            return None
        remote = [
            i for i, s in enumerate(samples) if s not in self._outside and is_remote(self.paths[s])
        ]
        storage = self.storage or Storage()
        urls = [self.paths[samples[i]] for i in remote]
        fetched = storage.read_many(urls, self.max_file_bytes, requests)
        results: list[bytes | Exception] = [b""] * len(samples)
        for i, data in zip(remote, fetched, strict=True):
            results[i] = data
        fetched_here = set(remote)
        for i, sample in enumerate(samples):
            if i not in fetched_here:
                try:
                    results[i] = self.read(sample)
                except Exception as error:
                    results[i] = error
        return results

    def where(self, sample: int) -> str:
        """Names ``sample``'s image in messages: ``image file 'path'``."""
        return f"image file {self.paths[sample]!r}"

    def identity(self, sample: int) -> bytes:
        """A local file's path, size and modification time; a URL's size and ETag (or
        other version: one metadata request, the image not downloaded), or its bytes
        where the store gives no version."""
        path = self.paths[sample]
        if sample in self._outside:
            return super().identity(sample)
        if is_remote(path):
            size, version = (self.storage or Storage()).identity(path)
            if not version:
                return super().identity(sample)
            return f"url\0{path}\0{size}\0{version}".encode("utf-8", "surrogateescape")
        stat = os.stat(path)
        return f"file\0{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()


def outside_message(path: str, root: str) -> str:
    return (
        f"image path {path!r} leads outside the root folder {root!r} (absolute paths and "
        "'..' are refused, because a table is data that may come from elsewhere); move the "
        "files under the root, pass root= a folder that holds them, or pass "
        "allow_outside_root=True if you trust every path in the table"
    )
