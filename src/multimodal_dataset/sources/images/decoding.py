"""Encoded image bytes to a ``uint8`` array of one size, as a viewer shows the image.

`ImageDecoder` turns the bytes of one image (JPEG, PNG, BMP, GIF, WebP and every other
format Pillow reads) into ``size + (channels,)`` ``uint8`` pixels. Sources that read the
bytes from elsewhere (image files, and later Parquet cells or tar members) share it.

- JPEGs decode at the smallest DCT scale at or above the target size (libjpeg's scaling,
  through ``simplejpeg`` when it is installed, else Pillow's draft mode); one that decodes
  straight to the target size skips Pillow altogether. The benchmarks measure the gain.
- EXIF orientation is applied (as ``PIL.ImageOps.exif_transpose`` does), on the JPEG fast
  path too: a phone photo stored sideways arrives upright.
- 16-bit images (16-bit grayscale PNGs, mode ``I;16``) are scaled to 8 bits (value / 257),
  not clipped at 255.
- In ``"rgb"`` and ``"grayscale"`` modes an alpha channel is dropped, as
  ``keras.utils.load_img`` and ``tf.io.decode_image(channels=3)`` drop it;
  ``"rgba"`` keeps it. Animated GIFs and multi-frame files give their first frame, as in
  Keras.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from multimodal_dataset._utils.optional import optional_import, try_import

ColorMode = Literal["rgb", "grayscale", "rgba"]

CHANNELS = {"rgb": 3, "grayscale": 1, "rgba": 4}
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos", "box", "hamming")
_PIL_MODE = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
#: Pillow modes of images with more than 8 bits per sample, scaled to 8 bits.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def pillow() -> Any:
    """``PIL.Image``, or an ImportError naming the ``images`` extra."""
    return optional_import("PIL.Image", "Decoding images")


def simplejpeg_module() -> Any:
    """The faster libjpeg-turbo decoder, or None (Pillow decodes JPEGs then)."""
    return try_import("simplejpeg")


@dataclass(frozen=True)
class ImageDecoder:
    """Decodes, orients, converts and resizes encoded images to one size.

    Attributes:
        size: ``(height, width)`` of every output image.
        color_mode: ``"rgb"``, ``"grayscale"`` or ``"rgba"``.
        interpolation: Pillow's resampling filter name (``"bilinear"``, ...).
        crop_to_aspect_ratio: Centre-crop to the aspect ratio of ``size`` before resizing.
    """

    size: tuple[int, int]
    color_mode: ColorMode = "rgb"
    interpolation: str = "bilinear"
    crop_to_aspect_ratio: bool = False

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.size, CHANNELS[self.color_mode])

    def decode(self, data: bytes) -> np.ndarray:
        """``uint8`` pixels of ``shape`` from encoded bytes.

        Raises:
            OSError, ValueError: As raised by the decoder (corrupt, truncated, unknown).
        """
        h, w = self.size
        orientation = jpeg_orientation(data)
        decoded = self._decode_jpeg(data, transposed=orientation >= 5)
        if decoded is not None:
            decoded = orient(decoded, orientation)
            if decoded.shape[:2] == (h, w) and not self.crop_to_aspect_ratio:
                return decoded  # decoded at the target size: no resize to do
        image_module = pillow()
        mode = _PIL_MODE[self.color_mode]
        if decoded is None:
            image = self._decode_with_pillow(data)
        else:
            image = image_module.fromarray(decoded[..., 0] if mode == "L" else decoded, mode)
        box = centre_crop(image.size, (w, h)) if self.crop_to_aspect_ratio else None
        if image.size != (w, h) or box is not None:
            resample = getattr(image_module.Resampling, self.interpolation.upper())
            image = image.resize((w, h), resample, box=box)
        return np.asarray(image).reshape(self.shape)

    def _decode_jpeg(self, data: bytes, transposed: bool = False) -> np.ndarray | None:
        """A JPEG decoded by simplejpeg at the smallest DCT scale >= size, if it can.

        ``transposed``: the EXIF orientation swaps height and width, so the stored image
        must be at least ``(width, height)``.
        """
        if data[:2] != b"\xff\xd8" or self.color_mode == "rgba":
            return None
        simplejpeg = simplejpeg_module()
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

    def _decode_with_pillow(self, data: bytes) -> Any:
        image_module = pillow()
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


_ORIENTATION_TAG = 0x0112


def jpeg_orientation(data: bytes) -> int:
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


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
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


def centre_crop(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centred box of ``size`` (width, height) with the aspect ratio of ``target``."""
    width, height = size
    crop_w = min(width, round(height * target[0] / target[1]))
    crop_h = min(height, round(width * target[1] / target[0]))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h
