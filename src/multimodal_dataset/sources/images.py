"""`ImageFiles`: image files on disk, decoded and resized a batch at a time, no TensorFlow.

A batch's files are read and decoded in a pool of threads (Pillow and simplejpeg release
the GIL while they decode and resize), each thread taking a share of the batch. What an
image becomes is `ImageDecoder`'s business (see ``image_decoding``): JPEGs at a reduced
DCT scale, EXIF orientation applied, 16-bit images scaled, alpha dropped in RGB mode.

Files are data from elsewhere: only regular files are read (a named pipe or a device is
refused without being opened for reading), no file is read past ``max_file_bytes``, and
with ``root`` set a path may not leave it (absolute paths and ``..`` are refused unless
``allow_outside_root=True``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from multimodal_dataset.checks import check_choice, check_int
from multimodal_dataset.files import (
    FileTooLargeError,
    NotARegularFileError,
    OutsideRootError,
    is_inside,
    read_regular_file,
)
from multimodal_dataset.picklable import Picklable
from multimodal_dataset.sources.image_decoding import (
    INTERPOLATIONS,
    ColorMode,
    ImageDecoder,
    pillow,
)
from multimodal_dataset.sources.protocol import (
    GatherContext,
    OnError,
    SampleError,
    Source,
    check_on_error,
    check_rows,
)

if TYPE_CHECKING:
    from multimodal_dataset.augmentation import ImageAugmentation

#: The largest file read by default (a 24-megapixel uncompressed RGB TIFF is 72 MB).
DEFAULT_MAX_FILE_BYTES = 256 * 2**20


class ImageFiles(Source, Picklable):
    """Image files decoded, converted and resized to one fixed size, a batch at a time.

    Every image becomes ``size + (channels,)``: converted to RGB (or grayscale, or RGBA),
    resized with antialiasing (optionally after a centre crop to the target aspect
    ratio), and scaled to ``[0, 1]`` as ``keras.config.floatx()``, or kept as ``uint8``
    0-255 on request (for a model that rescales itself). Only the files of the requested
    batch are read. A batch's files are decoded in ``num_threads`` parallel threads.

    Example:

    ```python
    images = ImageFiles(["a.jpg", "b.png"], size=(64, 64))
    ds = MultimodalDataset((images, token_ids, numbers), labels, batch_size=32)
    ```

    Args:
        paths: One image file path per sample.
        size: ``(height, width)`` of every output image.
        root: Folder that relative paths are relative to (default: the working directory).
        color_mode: ``"rgb"`` (3 channels), ``"grayscale"`` (1) or ``"rgba"`` (4).
        dtype: ``None`` for ``keras.config.floatx()`` in ``[0, 1]``, or ``"uint8"``.
        interpolation: Resampling filter: ``"bilinear"``, ``"nearest"``, ``"bicubic"``,
            ``"lanczos"``, ``"box"`` or ``"hamming"``.
        crop_to_aspect_ratio: Centre-crop each image to the aspect ratio of ``size``
            before resizing, instead of stretching it.
        augment: An `ImageAugmentation` applied per sample, drawn from the dataset's seed,
            the epoch and the sample index. Use it for training data only.
        on_error: ``"raise"`` to stop at a missing, corrupt or truncated file with a
            `SampleError`, or ``"replace"`` to use an all-zero image and report it.
        num_threads: Threads decoding one batch; default ``min(8, os.cpu_count())``.
        rows: Table row of each sample, named in error messages (set by `from_table`).
        column: Table column of the paths, named in error messages.
        allow_outside_root: With ``root`` set, paths must stay inside it: absolute paths
            elsewhere and ``..`` escapes are bad samples (an error, or replaced with
            ``on_error="replace"``). Pass True if you trust every path. Without ``root``
            paths are used as given.
        max_file_bytes: Files larger than this are refused rather than read into memory.

    Raises:
        ValueError: For a bad ``size``, ``color_mode``, ``dtype`` or ``interpolation``.
        ImportError: If Pillow is not installed.
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_pool": lambda: None,
        "_lock": threading.Lock,
    }

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]] | np.ndarray,
        size: tuple[int, int],
        *,
        root: str | os.PathLike[str] | None = None,
        color_mode: ColorMode = "rgb",
        dtype: str | None = None,
        interpolation: str = "bilinear",
        crop_to_aspect_ratio: bool = False,
        augment: ImageAugmentation | None = None,
        on_error: OnError = "raise",
        num_threads: int | None = None,
        rows: Sequence[int] | np.ndarray | None = None,
        column: str | None = None,
        allow_outside_root: bool = False,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        pillow()  # an ImportError naming the extra, before anything else
        if isinstance(paths, (str, os.PathLike)):
            raise TypeError(
                f"ImageFiles takes one path per sample; got the single path {paths!r}. To "
                "read a folder, list it first: sorted(pathlib.Path(folder).glob('*.jpg'))."
            )
        folder = os.fspath(root) if root is not None else None
        given = [os.fspath(p) for p in paths]
        self.paths = [os.path.join(folder, p) for p in given] if folder else given
        check_choice(color_mode, "color_mode", ("rgb", "grayscale", "rgba"))
        check_choice(interpolation, "interpolation", INTERPOLATIONS)
        self.decoder = ImageDecoder(
            _check_size(size), color_mode, interpolation, bool(crop_to_aspect_ratio)
        )
        if dtype is None:
            import keras

            dtype = keras.config.floatx()
        self._dtype = np.dtype(dtype)
        if self._dtype.kind != "f" and self._dtype != np.uint8:
            raise ValueError(
                f"dtype must be None (keras.config.floatx(), values in [0, 1]), a float "
                f"dtype, or 'uint8' (values 0-255); got dtype={dtype!r}."
            )
        self.augment = augment
        self.on_error = check_on_error(on_error)
        if num_threads is None:
            num_threads = min(8, os.cpu_count() or 1)
        self.num_threads = check_int(num_threads, "num_threads")
        self.rows = check_rows(rows, len(self.paths), "ImageFiles")
        self.column = column
        self.max_file_bytes = check_int(max_file_bytes, "max_file_bytes")
        self.root = None if folder is None else os.path.abspath(folder)
        self.allow_outside_root = bool(allow_outside_root)
        self._outside: dict[int, str] = {}
        if self.root is not None and not self.allow_outside_root:
            self._outside = {
                i: p for i, p in enumerate(given) if not is_inside(p, self.paths[i], self.root)
            }
            if self._outside and self.on_error == "raise":
                sample = min(self._outside)
                more = len(self._outside) - 1
                also = f" ({more} more path{'s' if more > 1 else ''} also outside)" if more else ""
                problem = outside_message(self._outside[sample], self.root)
                raise SampleError(f"ImageFiles: {self.describe(sample)}: {problem}{also}.")
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), *self.decoder.shape)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of every image."""
        return self.decoder.size

    @property
    def color_mode(self) -> ColorMode:
        return self.decoder.color_mode

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    def __repr__(self) -> str:
        return (
            f"ImageFiles({len(self.paths)} files, size={self.size}, "
            f"color_mode={self.color_mode!r}, dtype={self._dtype.name!r})"
        )

    # -------------------------------------------------------------------------- gathering

    def gather(self, indices: np.ndarray, context: GatherContext) -> np.ndarray:
        """Decodes the files of ``indices`` in parallel into one batch."""
        batch = np.zeros((len(indices), *self.shape[1:]), dtype=np.uint8)

        def load(positions: range) -> None:
            for k in positions:
                sample = int(indices[k])
                try:
                    batch[k] = self.load(sample)
                except Exception as error:  # every failure names the file and the sample
                    self.bad_sample(context, sample, _explain(error, self.paths[sample]))

        threads = min(self.num_threads, len(indices))
        if threads < 2:
            load(range(len(indices)))
        else:
            # One contiguous share of the batch per thread (one task each, not one per
            # file); list() re-raises the first error of any thread in the caller's thread.
            shares = [range(t, len(indices), threads) for t in range(threads)]
            list(self._executor().map(load, shares))
        if self.augment is not None:
            batch = self.augment.apply(batch, indices, context.seed, context.epoch)
        if self._dtype == np.uint8:
            return batch
        scaled: np.ndarray = np.multiply(batch, self._dtype.type(1 / 255), dtype=self._dtype)
        return scaled

    def load(self, sample: int) -> np.ndarray:
        """Reads and decodes one file to ``uint8`` ``size + (channels,)``.

        Raises:
            OSError, ValueError: As raised by the file system or the decoder.
        """
        if sample in self._outside:
            raise OutsideRootError(outside_message(self._outside[sample], str(self.root)))
        return self.decoder.decode(read_regular_file(self.paths[sample], self.max_file_bytes))

    def close(self) -> None:
        """Stops the decoding threads; they restart on the next batch."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.shutdown(wait=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            # A forked worker process inherits the pool object but none of its threads.
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.num_threads, "multimodal_dataset_images")
                self._pool_pid = os.getpid()
            return self._pool


def _check_size(size: Any) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in size)
        or min(size) < 1
    ):
        raise ValueError(
            f"size must be (height, width) in pixels, two positive integers; got {size!r}."
        )
    return int(size[0]), int(size[1])


def _explain(error: Exception, path: str) -> str:
    if isinstance(error, FileNotFoundError):
        return f"image file {path!r} does not exist"
    if isinstance(error, IsADirectoryError):
        return f"image path {path!r} is a directory, not a file"
    if isinstance(error, OutsideRootError):
        return str(error)
    if isinstance(error, (NotARegularFileError, FileTooLargeError)):
        return f"image file {error}"
    if isinstance(error, PermissionError):
        return f"image file {path!r} cannot be read (permission denied)"
    if type(error).__name__ == "UnidentifiedImageError":
        return f"{path!r} is not an image file Pillow can read (corrupt, or not an image)"
    if isinstance(error, OSError) and "truncated" in str(error):
        return f"image file {path!r} is truncated ({error})"
    return f"image file {path!r} could not be decoded ({type(error).__name__}: {error})"


def outside_message(path: str, root: str) -> str:
    return (
        f"image path {path!r} leads outside the root folder {root!r} (absolute paths and "
        "'..' are refused, because a table is data that may come from elsewhere); move the "
        "files under the root, pass root= a folder that holds them, or pass "
        "allow_outside_root=True if you trust every path in the table"
    )
