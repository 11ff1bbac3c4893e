"""`ImageFiles`: image files on disk, decoded and resized a batch at a time, no TensorFlow.

Decoding uses Pillow (JPEG, PNG, BMP, GIF and every other format it reads) in a pool of
threads; Pillow and simplejpeg release the GIL while they decode and resize, so a batch's
files decode in parallel, each thread taking a share of the batch. JPEGs are decoded at a
reduced scale when the target size allows (libjpeg's DCT scaling, through ``simplejpeg``
when it is installed, else Pillow's draft mode). Measured on smooth 256x256 JPEGs to
64x64, one thread: Pillow full decode 935 images/s, Pillow draft mode 2,009, simplejpeg
2,531 (the same pixels as draft mode here; simplejpeg may pick a finer scale such as 5/8,
so pixels can differ by a few levels). A JPEG that decodes straight to the target size
skips Pillow altogether.

What a Keras user sees in an image viewer is what the model gets:

- EXIF orientation is applied (as ``PIL.ImageOps.exif_transpose`` does): a phone photo
  stored sideways with orientation 6 arrives upright, on the JPEG fast path too.
- 16-bit images (16-bit grayscale PNGs, mode ``I;16``) are scaled to 8 bits (value / 257),
  not clipped at 255.
- In ``"rgb"`` and ``"grayscale"`` modes an alpha channel is dropped, as
  ``keras.utils.load_img`` and ``tf.io.decode_image(channels=3)`` drop it; use
  ``color_mode="rgba"`` to keep it. Animated GIFs and multi-frame files give their first
  frame, as in Keras.

Files are data from elsewhere: only regular files are read (a named pipe or a device is
refused without being opened for reading), no file is read past ``max_file_bytes``, and
with ``root`` set a path may not leave it (absolute paths and ``..`` are refused unless
``allow_outside_root=True``).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from multimodal_dataset.sources import (
    GatherContext,
    OnError,
    SampleError,
    Source,
    check_on_error,
    check_rows,
)

if TYPE_CHECKING:
    from PIL import Image

    from multimodal_dataset.augmentation import ImageAugmentation

ColorMode = Literal["rgb", "grayscale", "rgba"]

_CHANNELS = {"rgb": 3, "grayscale": 1, "rgba": 4}
_PIL_MODE = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos", "box", "hamming")
#: Pillow modes of images with more than 8 bits per sample, scaled to 8 bits.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
#: The largest file read by default (a 24-megapixel uncompressed RGB TIFF is 72 MB).
DEFAULT_MAX_FILE_BYTES = 256 * 2**20


def _import_pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "ImageFiles decodes images with Pillow, which is not installed. Install it with "
            "`pip install 'multimodal-dataset[images]'` (or `pip install pillow`)."
        ) from None
    return Image


def _import_simplejpeg() -> Any:
    try:
        import simplejpeg
    except ImportError:
        return None
    return simplejpeg


class ImageFiles(Source):
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
        image = _import_pillow()
        if isinstance(paths, (str, os.PathLike)):
            raise TypeError(
                f"ImageFiles takes one path per sample; got the single path {paths!r}. To "
                "read a folder, list it first: sorted(pathlib.Path(folder).glob('*.jpg'))."
            )
        folder = os.fspath(root) if root is not None else None
        given = [os.fspath(p) for p in paths]
        self.paths = [os.path.join(folder, p) for p in given] if folder else given
        self.size = _check_size(size)
        if color_mode not in _CHANNELS:
            raise ValueError(
                f"color_mode must be 'rgb', 'grayscale' or 'rgba'; got {color_mode!r}."
            )
        self.color_mode: ColorMode = color_mode
        if dtype is None:
            import keras

            dtype = keras.config.floatx()
        self._dtype = np.dtype(dtype)
        if self._dtype.kind != "f" and self._dtype != np.uint8:
            raise ValueError(
                f"dtype must be None (keras.config.floatx(), values in [0, 1]), a float "
                f"dtype, or 'uint8' (values 0-255); got dtype={dtype!r}."
            )
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {', '.join(map(repr, _INTERPOLATIONS))}; got "
                f"{interpolation!r}."
            )
        self.interpolation = interpolation
        self._resample = getattr(image.Resampling, interpolation.upper())
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.augment = augment
        self.on_error = check_on_error(on_error)
        if num_threads is None:
            num_threads = min(8, os.cpu_count() or 1)
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer; got {num_threads!r}.")
        self.num_threads = num_threads
        self.rows = check_rows(rows, len(self.paths), "ImageFiles")
        self.column = column
        if (
            isinstance(max_file_bytes, bool)
            or not isinstance(max_file_bytes, int)
            or max_file_bytes < 1
        ):
            raise ValueError(f"max_file_bytes must be a positive integer; got {max_file_bytes!r}.")
        self.max_file_bytes = max_file_bytes
        self.root = None if folder is None else os.path.abspath(folder)
        self.allow_outside_root = bool(allow_outside_root)
        self._outside: dict[int, str] = {}
        if self.root is not None and not self.allow_outside_root:
            self._outside = {
                i: p for i, p in enumerate(given) if not _inside(p, self.paths[i], self.root)
            }
            if self._outside and self.on_error == "raise":
                sample = min(self._outside)
                more = len(self._outside) - 1
                also = f" ({more} more path{'s' if more > 1 else ''} also outside)" if more else ""
                problem = _outside_message(self._outside[sample], self.root)
                raise SampleError(f"ImageFiles: {self.describe(sample)}: {problem}{also}.")
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), *self.size, _CHANNELS[self.color_mode])

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
        """Decodes, converts and resizes one file to ``uint8`` ``size + (channels,)``.

        Raises:
            OSError, ValueError: As raised by the file system or the decoder.
        """
        path = self.paths[sample]
        if sample in self._outside:
            raise OutsideRootError(_outside_message(self._outside[sample], str(self.root)))
        data = read_regular_file(path, self.max_file_bytes)
        h, w = self.size
        orientation = _jpeg_orientation(data)
        decoded = self._decode_jpeg(data, transposed=orientation >= 5)
        if decoded is not None:
            decoded = _orient(decoded, orientation)
        if decoded is not None and decoded.shape[:2] == (h, w) and not self.crop_to_aspect_ratio:
            return decoded  # decoded at the target size: no resize to do
        image_module = _import_pillow()
        mode = _PIL_MODE[self.color_mode]
        if decoded is None:
            image = self._decode(data)
        else:
            image = image_module.fromarray(decoded[..., 0] if mode == "L" else decoded, mode)
        box = _centre_crop(image.size, (w, h)) if self.crop_to_aspect_ratio else None
        if image.size != (w, h) or box is not None:
            image = image.resize((w, h), self._resample, box=box)
        return np.asarray(image).reshape(self.shape[1:])

    def _decode_jpeg(self, data: bytes, transposed: bool = False) -> np.ndarray | None:
        """A JPEG decoded by simplejpeg at the smallest DCT scale >= size, if it can.

        ``transposed``: the EXIF orientation swaps height and width, so the stored image
        must be at least ``(width, height)``.
        """
        if data[:2] != b"\xff\xd8" or self.color_mode == "rgba":
            return None
        simplejpeg = _import_simplejpeg()
        if simplejpeg is None:
            return None
        h, w = self.size[::-1] if transposed else self.size
        try:
            array: np.ndarray = simplejpeg.decode_jpeg(
                data,
                colorspace="GRAY" if self.color_mode == "grayscale" else "RGB",
                min_height=h,
                min_width=w,
            )
        except ValueError:
            return None  # e.g. CMYK or damaged: Pillow decodes it or says what is wrong
        return array

    def _decode(self, data: bytes) -> Image.Image:
        image_module = _import_pillow()
        mode = _PIL_MODE[self.color_mode]
        h, w = self.size
        image = image_module.open(io.BytesIO(data))
        orientation = int(image.getexif().get(_ORIENTATION_TAG, 1) or 1)
        if image.format == "JPEG":
            # Decode at the smallest DCT scale >= the target (stored sideways if transposed).
            image.draft(mode, (h, w) if orientation >= 5 else (w, h))
        if image.mode in _WIDE_MODES:
            image.load()  # decoding errors surface here
            # 16-bit samples: scale 0-65535 to 0-255 (Pillow's convert would clip at 255).
            wide = np.asarray(image).astype(np.int64)
            narrow = ((np.clip(wide, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
            image = image_module.fromarray(narrow, "L")
        image = image.convert(mode)  # loads the pixels: decoding errors surface here
        if 2 <= orientation <= 8:
            image = image.transpose(getattr(image_module.Transpose, _PIL_TRANSPOSE[orientation]))
        return image

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

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pool"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def read_regular_file(path: str, max_bytes: int) -> bytes:
    """The contents of the regular file ``path``, refusing anything else.

    The file is opened without blocking (a named pipe would otherwise block ``open`` until
    a writer appears) and checked to be a regular file before anything is read, so FIFOs,
    devices such as ``/dev/zero`` and sockets are refused; at most ``max_bytes`` are read.

    Raises:
        FileNotFoundError, IsADirectoryError, OSError: What is wrong, naming the path.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(f"{path!r} is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFileError(
                f"{path!r} is not a regular file ({_file_kind(info.st_mode)}); only regular "
                "files are read"
            )
        if info.st_size > max_bytes:
            raise FileTooLargeError(
                f"{path!r} has {info.st_size:,} bytes, more than max_file_bytes={max_bytes:,}; "
                "pass a larger max_file_bytes if it is a real image"
            )
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLargeError(
            f"{path!r} grew past max_file_bytes={max_bytes:,} while it was read"
        )
    return data


class NotARegularFileError(OSError):
    """A path names a named pipe, a device, a socket or anything but a regular file."""


class FileTooLargeError(OSError):
    """A file is larger than the source's ``max_file_bytes``."""


class OutsideRootError(PermissionError):
    """A path leads outside the source's ``root`` and ``allow_outside_root`` is False."""


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _inside(given: str, joined: str, root: str) -> bool:
    """Whether the path ``given`` (``joined`` to ``root``) stays inside ``root``, lexically:
    ``..`` and absolute paths elsewhere leave it; symbolic links inside it are followed."""
    if not os.path.isabs(given) and ".." not in given:
        return True  # the common case, without normalising
    full = os.path.normpath(os.path.abspath(joined))
    return os.path.commonpath([full, root]) == root


def _outside_message(path: str, root: str) -> str:
    return (
        f"image path {path!r} leads outside the root folder {root!r} (absolute paths and "
        "'..' are refused, because a table is data that may come from elsewhere); move the "
        "files under the root, pass root= a folder that holds them, or pass "
        "allow_outside_root=True if you trust every path in the table"
    )


_ORIENTATION_TAG = 0x0112


def _jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of JPEG bytes, 1 when absent; reads only the headers."""
    if data[:2] != b"\xff\xd8":
        return 1
    position, end = 2, min(len(data), 1 << 20)
    while position + 4 <= end and data[position] == 0xFF:
        marker = data[position + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no EXIF before the pixels
            return 1
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xE1 and data[position + 4 : position + 10] == b"Exif\x00\x00":
            return _tiff_orientation(data[position + 10 : position + 2 + length])
        position += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (offset,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
        for k in range(count):
            entry = tiff[offset + 2 + 12 * k : offset + 14 + 12 * k]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag == _ORIENTATION_TAG and kind == 3:  # SHORT
                (value,) = struct.unpack(order + "H", entry[8:10])
                return value if 1 <= value <= 8 else 1
    except (KeyError, struct.error):
        return 1
    return 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Applies an EXIF orientation to an ``(h, w, c)`` array, as ``exif_transpose`` does."""
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = array.transpose(1, 0, 2)
    elif orientation == 6:
        array = np.rot90(array, -1)
    elif orientation == 7:
        array = array[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        array = np.rot90(array, 1)
    else:
        return array
    return np.ascontiguousarray(array)


#: EXIF orientation -> the ``PIL.Image.Transpose`` that undoes it (as ``exif_transpose``).
_PIL_TRANSPOSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}


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


def _centre_crop(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centred box of ``size`` (width, height) with the aspect ratio of ``target``."""
    width, height = size
    crop_w = min(width, round(height * target[0] / target[1]))
    crop_h = min(height, round(width * target[1] / target[0]))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


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
