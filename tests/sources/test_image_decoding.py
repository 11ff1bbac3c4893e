"""Image decoding: every format and mode to RGB or grayscale at one size, as a viewer
shows it: EXIF orientation, 16-bit range, alpha and animated GIFs as in Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import COLOUR, gather, solid, write_image
from multimodal_dataset import ImageFiles
from multimodal_dataset.sources.images import decoding as image_decoding

FLOATX = keras.config.floatx()


@pytest.mark.keras
@pytest.mark.parametrize(
    ("suffix", "mode", "tolerance"),
    [
        ("png", "RGB", 0),
        ("png", "RGBA", 0),
        ("png", "P", 0),
        ("jpg", "RGB", 3),
        ("bmp", "RGB", 0),
        ("gif", "P", 0),
    ],
)
def test_every_format_and_mode_decodes_to_rgb_floats_in_the_unit_range(
    tmp_path, suffix, mode, tolerance
):
    path = tmp_path / f"image.{suffix}"
    write_image(path, solid(), mode)
    batch = gather(ImageFiles([path, path], size=(8, 6)))
    assert batch.shape == (2, 8, 6, 3)
    assert batch.dtype == FLOATX
    expected = COLOUR / 255
    assert np.abs(batch - expected).max() <= tolerance / 255 + 1e-6


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_grayscale_files_and_grayscale_output(tmp_path, suffix):
    path = tmp_path / f"gray.{suffix}"
    write_image(path, np.full((30, 40), 120, dtype=np.uint8), "L")
    rgb = gather(ImageFiles([path], size=(5, 5), dtype="uint8"))
    gray = gather(ImageFiles([path], size=(5, 5), color_mode="grayscale", dtype="uint8"))
    assert rgb.shape == (1, 5, 5, 3) and gray.shape == (1, 5, 5, 1)
    assert rgb.dtype == gray.dtype == np.uint8
    assert np.abs(rgb.astype(int) - 120).max() <= 2
    assert np.abs(gray.astype(int) - 120).max() <= 2


def test_crop_to_aspect_ratio_keeps_the_centre_instead_of_stretching(tmp_path):
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, :20, 0] = 255  # red | green | blue thirds
    pixels[:, 20:40, 1] = 255
    pixels[:, 40:, 2] = 255
    path = tmp_path / "wide.png"
    write_image(path, pixels)
    cropped = gather(ImageFiles([path], size=(10, 10), crop_to_aspect_ratio=True, dtype="uint8"))
    stretched = gather(ImageFiles([path], size=(10, 10), dtype="uint8"))
    assert (cropped[0, :, 2:8] == [0, 255, 0]).all()
    assert stretched[0, 5, 0, 0] == 255 and stretched[0, 5, -1, 2] == 255


def test_jpeg_fast_path_gives_the_same_pixels_as_pillow(tmp_path, monkeypatch):
    # simplejpeg may decode at a finer DCT scale (e.g. 5/8) than Pillow's draft (1/2^k);
    # both then resize, so pixels agree closely, not bit for bit.
    paths = []
    for i, (h, w) in enumerate([(256, 256), (200, 120), (64, 64), (31, 47)]):
        paths.append(tmp_path / f"{i}.jpg")
        write_image(paths[-1], smooth_image(h, w, i))
    for mode in ("rgb", "grayscale"):
        source = ImageFiles(paths, size=(64, 64), color_mode=mode, dtype="uint8")
        assert image_decoding.simplejpeg_module() is not None
        fast = gather(source).astype(int)
        monkeypatch.setattr(image_decoding, "simplejpeg_module", lambda: None)
        pillow = gather(source).astype(int)
        monkeypatch.undo()
        assert np.abs(fast - pillow).mean() < 0.5
        assert np.abs(fast - pillow).max() <= 8


def test_sixteen_bit_pngs_keep_their_range(tmp_path):
    from PIL import Image

    gradient = np.linspace(0, 65280, 32 * 32).reshape(32, 32).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(gradient).save(path)
    assert Image.open(path).mode.startswith("I")
    for mode in ("rgb", "grayscale"):
        batch = gather(ImageFiles([path], size=(32, 32), color_mode=mode, dtype="uint8"))
        np.testing.assert_allclose(batch[0, ..., 0], gradient / 257, atol=1)
        assert 120 < batch.mean() < 135  # not saturated at 255


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fast_path", [True, False], ids=["simplejpeg", "pillow"])
def test_exif_orientation_is_applied_as_every_viewer_shows_it(
    tmp_path, monkeypatch, orientation, fast_path
):
    from PIL import Image, ImageOps

    pixels = np.zeros((24, 40, 3), dtype=np.uint8)  # stored sideways: 24 high, 40 wide
    pixels[:12, :20] = (250, 0, 0)  # red top-left quarter, as stored
    pixels[12:, 20:] = (0, 0, 250)  # blue bottom-right quarter
    path = exif_jpeg(tmp_path / f"o{orientation}.jpg", pixels, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    if not fast_path:
        monkeypatch.setattr(image_decoding, "simplejpeg_module", lambda: None)
    height, width = expected.shape[:2]
    got = gather(ImageFiles([path], size=(height, width), dtype="uint8"))[0]
    np.testing.assert_allclose(got.astype(int), expected.astype(int), atol=12)


@pytest.mark.keras
def test_alpha_is_dropped_in_rgb_mode_and_kept_in_rgba_mode_as_keras_does(tmp_path):
    pixels = np.zeros((8, 8, 4), dtype=np.uint8)
    pixels[..., 0] = 200
    pixels[..., 3] = 0  # fully transparent
    path = tmp_path / "alpha.png"
    write_image(path, pixels, mode="RGBA")
    rgb = gather(ImageFiles([path], size=(8, 8), dtype="uint8"))[0]
    expected = keras.utils.img_to_array(keras.utils.load_img(path), dtype="uint8")
    np.testing.assert_array_equal(rgb, expected)
    rgba = gather(ImageFiles([path], size=(8, 8), color_mode="rgba", dtype="uint8"))[0]
    assert (rgba[..., 3] == 0).all() and (rgba[..., 0] == 200).all()


@pytest.mark.keras
def test_an_animated_gif_gives_its_first_frame_as_keras_does(tmp_path):
    from PIL import Image

    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    first = gather(ImageFiles([path], size=(8, 8), dtype="uint8"))[0]
    expected = keras.utils.img_to_array(keras.utils.load_img(path), dtype="uint8")
    np.testing.assert_array_equal(first, expected)
    assert first[..., 0].min() > 200 and first[..., 2].max() < 50


def smooth_image(height, width, seed):
    """A photo-like image: smooth gradients and a disc (no pixel noise)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(0.5, 3, 3)
    pixels = np.stack([np.sin(a * x + b * y), np.cos(b * x - c * y), x * y], axis=-1)
    disc = (x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.05
    pixels[disc] = (1.0, 0.2, 0.1)
    return ((pixels + 1) * 127).clip(0, 255).astype(np.uint8)


def exif_jpeg(path, pixels, orientation):
    from PIL import Image

    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), quality=95)
    return path
