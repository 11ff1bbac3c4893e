"""ImageFiles: files read a batch at a time in threads and processes, only regular files
within their bound and root, and every bad file named with its sample."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import gather, write_image
from multimodal_dataset import ImageFiles, MultimodalDataset, SampleError
from multimodal_dataset.sources import GatherContext

FLOATX = keras.config.floatx()


@pytest.mark.keras
def test_uint8_output_keeps_the_0_to_255_values(image_files):
    floats = gather(ImageFiles(image_files, size=(20, 30)))
    ints = gather(ImageFiles(image_files, size=(20, 30), dtype="uint8"))
    assert ints.dtype == np.uint8
    np.testing.assert_allclose(floats, ints / 255, atol=1e-6)
    assert ints[5, 0, 0, 0] == 100


@pytest.mark.keras
def test_threads_decode_the_same_batch_as_one_thread(image_files):
    one = gather(ImageFiles(image_files, size=(7, 9), num_threads=1), [3, 1, 4, 1, 5, 9, 2, 6])
    many = gather(ImageFiles(image_files, size=(7, 9), num_threads=4), [3, 1, 4, 1, 5, 9, 2, 6])
    np.testing.assert_array_equal(one, many)


@pytest.mark.keras
def test_relative_paths_start_from_root(image_files, tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    source = ImageFiles([p.name for p in image_files], size=(20, 30), root=tmp_path)
    np.testing.assert_array_equal(gather(source), gather(ImageFiles(image_files, size=(20, 30))))


@pytest.mark.keras
def test_a_source_already_read_in_this_process_decodes_in_forked_workers(image_files, start_method):
    source = ImageFiles(image_files, size=(8, 8), num_threads=2)
    expected = gather(source, [4, 2, 0, 9])  # starts the decoding threads here
    ds = MultimodalDataset(source, batch_size=4, shuffle=False, workers=2, use_multiprocessing=True)
    try:
        np.testing.assert_array_equal(ds[0][0], gather(source, [0, 1, 2, 3]))
        assert expected.shape == (4, 8, 8, 3)
    finally:
        ds.close()


@pytest.mark.keras
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
    "corrupt": "is not an image Pillow can read",
    "truncated": "truncated",
    "fifo": "is not a regular file \\(a named pipe",
    "device": "is not a regular file \\(a device",
}


@pytest.mark.keras
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


@pytest.mark.keras
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


@pytest.mark.backend
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


@pytest.mark.keras
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


@pytest.mark.keras
def test_a_file_larger_than_max_file_bytes_is_refused_unread(image_files):
    size = os.path.getsize(image_files[0])
    with pytest.raises(SampleError, match=r"more than max_file_bytes=.*pass a larger"):
        gather(ImageFiles(image_files[:1], size=(8, 8), max_file_bytes=size - 1))
    assert gather(ImageFiles(image_files[:1], size=(8, 8), max_file_bytes=size)).shape[0] == 1


@pytest.mark.keras
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


@pytest.mark.keras
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


@pytest.mark.keras
def test_allow_outside_root_reads_every_path(outside):
    root, paths = outside
    batch = gather(ImageFiles(paths, size=(8, 8), root=root, allow_outside_root=True))
    assert batch.shape == (4, 8, 8, 3) and batch.reshape(4, -1).any(axis=1).all()


@pytest.mark.keras
def test_without_a_root_paths_are_used_as_given(image_files):
    assert gather(ImageFiles([str(image_files[0])], size=(8, 8))).shape == (1, 8, 8, 3)
