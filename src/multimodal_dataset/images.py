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
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from multimodal_dataset.sources import GatherContext, OnError, Source, check_on_error, check_rows

if TYPE_CHECKING:
    from PIL import Image

    from multimodal_dataset.augmentation import ImageAugmentation

ColorMode = Literal["rgb", "grayscale", "rgba"]

_CHANNELS = {"rgb": 3, "grayscale": 1, "rgba": 4}
_PIL_MODE = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos", "box", "hamming")


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
    ) -> None:
        image = _import_pillow()
        if isinstance(paths, (str, os.PathLike)):
            raise TypeError(
                f"ImageFiles takes one path per sample; got the single path {paths!r}. To "
                "read a folder, list it first: sorted(pathlib.Path(folder).glob('*.jpg'))."
            )
        folder = os.fspath(root) if root is not None else None
        self.paths = [os.path.join(folder, os.fspath(p)) if folder else os.fspath(p) for p in paths]
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
        with open(path, "rb") as f:
            data = f.read()
        h, w = self.size
        decoded = self._decode_jpeg(data)
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

    def _decode_jpeg(self, data: bytes) -> np.ndarray | None:
        """A JPEG decoded by simplejpeg at the smallest DCT scale >= size, if it can."""
        if data[:2] != b"\xff\xd8" or self.color_mode == "rgba":
            return None
        simplejpeg = _import_simplejpeg()
        if simplejpeg is None:
            return None
        h, w = self.size
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
        if image.format == "JPEG":
            image.draft(mode, (w, h))  # decode at the smallest DCT scale >= (w, h)
        image = image.convert(mode)  # loads the pixels: decoding errors surface here
        return image

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
    if type(error).__name__ == "UnidentifiedImageError":
        return f"{path!r} is not an image file Pillow can read (corrupt, or not an image)"
    if isinstance(error, OSError) and "truncated" in str(error):
        return f"image file {path!r} is truncated ({error})"
    return f"image file {path!r} could not be decoded ({type(error).__name__}: {error})"
