"""ImageFiles: real files of several formats and modes decoded, resized and batched, and
every kind of bad file named with its sample, in every worker mode."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import write_image
from multimodal_dataset import ImageFiles, MultimodalDataset, SampleError
from multimodal_dataset.sources import image_decoding
from multimodal_dataset.sources import GatherContext

FLOATX = keras.config.floatx()
COLOUR = np.array([200, 100, 50], dtype=np.uint8)


def solid(height=30, width=40, colour=COLOUR):
    return np.broadcast_to(colour, (height, width, 3)).copy()


def gather(source, indices=None, **context):
    indices = np.arange(len(source)) if indices is None else np.asarray(indices)
    return source.gather(indices, GatherContext(**context))


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


def test_uint8_output_keeps_the_0_to_255_values(image_files):
    floats = gather(ImageFiles(image_files, size=(20, 30)))
    ints = gather(ImageFiles(image_files, size=(20, 30), dtype="uint8"))
    assert ints.dtype == np.uint8
    np.testing.assert_allclose(floats, ints / 255, atol=1e-6)
    assert ints[5, 0, 0, 0] == 100


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


def smooth_image(height, width, seed):
    """A photo-like image: smooth gradients and a disc (no pixel noise)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(0.5, 3, 3)
    pixels = np.stack([np.sin(a * x + b * y), np.cos(b * x - c * y), x * y], axis=-1)
    disc = (x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.05
    pixels[disc] = (1.0, 0.2, 0.1)
    return ((pixels + 1) * 127).clip(0, 255).astype(np.uint8)


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


def test_threads_decode_the_same_batch_as_one_thread(image_files):
    one = gather(ImageFiles(image_files, size=(7, 9), num_threads=1), [3, 1, 4, 1, 5, 9, 2, 6])
    many = gather(ImageFiles(image_files, size=(7, 9), num_threads=4), [3, 1, 4, 1, 5, 9, 2, 6])
    np.testing.assert_array_equal(one, many)


def test_relative_paths_start_from_root(image_files, tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    source = ImageFiles([p.name for p in image_files], size=(20, 30), root=tmp_path)
    np.testing.assert_array_equal(gather(source), gather(ImageFiles(image_files, size=(20, 30))))


def test_a_source_already_read_in_this_process_decodes_in_forked_workers(image_files, start_method):
    source = ImageFiles(image_files, size=(8, 8), num_threads=2)
    expected = gather(source, [4, 2, 0, 9])  # starts the decoding threads here
    ds = MultimodalDataset(source, batch_size=4, shuffle=False, workers=2, use_multiprocessing=True)
    try:
        np.testing.assert_array_equal(ds[0][0], gather(source, [0, 1, 2, 3]))
        assert expected.shape == (4, 8, 8, 3)
    finally:
        ds.close()


def test_images_feed_a_dataset_with_the_declared_spec(image_files):
    labels = np.arange(12)
    ds = MultimodalDataset(ImageFiles(image_files, size=(8, 8)), labels, batch_size=5, seed=0)
    (x_spec, _) = ds.element_spec
    assert x_spec.shape == (None, 8, 8, 3) and x_spec.dtype == FLOATX
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape[1:] == (8, 8, 3) and x.dtype == FLOATX
        # The red channel encodes each sample's id: images stay with their labels.
        np.testing.assert_allclose(x[:, 0, -1, 0], 20 * y / 255, atol=1e-6)


def bad_file(tmp_path, kind):
    path = tmp_path / f"bad_{kind}.jpg"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
        return path
    if kind == "corrupt":
        path.write_bytes(b"this is not an image at all" * 10)
        return path
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block until a writer comes
        return path
    if kind == "device":
        return Path("/dev/zero")  # endless: reading it whole would exhaust memory
    write_image(path, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    return path


BAD_FILES = {
    "missing": "does not exist",
    "directory": "is a directory",
    "corrupt": "not an image file Pillow can read",
    "truncated": "truncated",
    "fifo": "is not a regular file \\(a named pipe",
    "device": "is not a regular file \\(a device",
}


@pytest.mark.parametrize(("kind", "message"), BAD_FILES.items())
def test_a_bad_file_raises_naming_the_file_the_sample_and_the_input(
    tmp_path, image_files, kind, message
):
    paths = list(image_files[:4])
    paths[2] = bad_file(tmp_path, kind)
    ds = MultimodalDataset((ImageFiles(paths, size=(8, 8)), np.zeros(4)), batch_size=4)
    with pytest.raises(SampleError, match=message) as info:
        ds[0]
    text = str(info.value)
    assert "inputs[0]" in text and "sample 2" in text and str(paths[2]) in text
    assert "on_error='replace'" in text


def test_errors_in_worker_threads_and_processes_reach_the_caller(
    tmp_path, image_files, worker_mode
):
    paths = list(image_files)
    paths[7] = bad_file(tmp_path, "corrupt")
    source = ImageFiles(paths, size=(8, 8))
    ds = MultimodalDataset(source, np.arange(12), batch_size=6, **worker_mode)
    order = ds.batch_indices(0)
    bad_batch = 0 if 7 in order else 1
    try:
        with pytest.raises(SampleError, match=r"inputs: sample 7: .*bad_corrupt\.jpg"):
            ds[bad_batch]
        # The workers survive the error: the other batch still comes back.
        x, y = ds[1 - bad_batch]
        assert x.shape == (6, 8, 8, 3) and 7 not in y
    finally:
        ds.close()


def test_a_failing_fit_stops_with_the_error_instead_of_hanging(tmp_path, image_files, worker_mode):
    paths = list(image_files)
    paths[7] = bad_file(tmp_path, "truncated")
    ds = MultimodalDataset(
        ImageFiles(paths, size=(8, 8)), np.arange(12) % 2, batch_size=4, seed=0, **worker_mode
    )
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    try:
        with pytest.raises(SampleError, match="truncated"):
            model.fit(ds, epochs=2, verbose=0)
    finally:
        ds.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": (0, 8)}, "size must be"),
        ({"size": 8}, "size must be"),
        ({"size": (8, 8), "color_mode": "cmyk"}, "color_mode"),
        ({"size": (8, 8), "dtype": "int32"}, "dtype must be"),
        ({"size": (8, 8), "interpolation": "cubic"}, "interpolation"),
        ({"size": (8, 8), "on_error": "skip"}, "on_error"),
        ({"size": (8, 8), "num_threads": 0}, "num_threads"),
    ],
)
def test_bad_arguments_say_what_is_allowed(image_files, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageFiles(image_files, **kwargs)


def test_a_single_path_is_rejected_with_a_hint(image_files):
    with pytest.raises(TypeError, match="one path per sample"):
        ImageFiles(str(image_files[0]), size=(8, 8))


def test_a_file_larger_than_max_file_bytes_is_refused_unread(image_files):
    size = os.path.getsize(image_files[0])
    with pytest.raises(SampleError, match=r"more than max_file_bytes=.*pass a larger"):
        gather(ImageFiles(image_files[:1], size=(8, 8), max_file_bytes=size - 1))
    assert gather(ImageFiles(image_files[:1], size=(8, 8), max_file_bytes=size)).shape[0] == 1


def test_a_named_pipe_is_replaced_and_reported_instead_of_hanging(tmp_path, image_files):
    paths = [image_files[0], bad_file(tmp_path, "fifo")]
    context = GatherContext()
    batch = ImageFiles(paths, size=(8, 8), on_error="replace").gather(np.arange(2), context)
    assert not batch[1].any()
    assert [sample for sample, _ in context.replaced] == [1]
    assert "named pipe" in context.replaced[0][1]


@pytest.fixture
def outside(tmp_path, image_files):
    """A root folder holding one image, with images beside it and elsewhere."""
    root = tmp_path / "root"
    root.mkdir()
    inside = root / "inside.png"
    inside.write_bytes(image_files[0].read_bytes())
    (root / "sub").mkdir()
    return root, ["inside.png", "../00.png", str(image_files[1]), "sub/../inside.png"]


def test_paths_that_leave_the_root_are_refused_naming_the_row(outside):
    root, paths = outside
    with pytest.raises(
        SampleError, match=r"sample 1: image path '\.\./00\.png' leads outside"
    ) as info:
        ImageFiles(paths, size=(8, 8), root=root)
    assert "1 more path also outside" in str(info.value)
    assert "allow_outside_root=True" in str(info.value)


def test_paths_outside_the_root_are_replaced_and_reported_with_on_error_replace(outside):
    root, paths = outside
    source = ImageFiles(paths, size=(8, 8), root=root, on_error="replace", dtype="uint8")
    context = GatherContext()
    batch = source.gather(np.arange(4), context)
    assert sorted(sample for sample, _ in context.replaced) == [1, 2]
    assert batch[0].any() and batch[3].any() and not batch[1].any() and not batch[2].any()


def test_allow_outside_root_reads_every_path(outside):
    root, paths = outside
    batch = gather(ImageFiles(paths, size=(8, 8), root=root, allow_outside_root=True))
    assert batch.shape == (4, 8, 8, 3) and batch.reshape(4, -1).any(axis=1).all()


def test_without_a_root_paths_are_used_as_given(image_files):
    assert gather(ImageFiles([str(image_files[0])], size=(8, 8))).shape == (1, 8, 8, 3)


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


def exif_jpeg(path, pixels, orientation):
    from PIL import Image

    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), quality=95)
    return path


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
