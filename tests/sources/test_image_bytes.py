"""`ImageBytes`: encoded images held in a table decode exactly as the same images read
from files do, whatever holds them (bytes, ``{bytes, path}`` structs, memory-mapped Arrow
files), and a worker process receives the files' paths, not their bytes."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest

from conftest import gather, id_png, id_table, write_image
from multimodal_dataset import ImageBytes, ImageFiles, SampleError
from multimodal_dataset.io.arrow_column import ArrowColumn

FORMATS = ["png", "jpg", "gif", "bmp", "webp"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, suffix in enumerate(FORMATS * 2):
        pixels = rng.integers(0, 256, size=(20 + i, 30, 3), dtype=np.uint8)
        paths.append(tmp_path / f"{i}.{suffix}")
        write_image(paths[-1], pixels)
    return paths


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale"])
@pytest.mark.parametrize("holder", ["bytes", "structs", "Arrow file"])
def test_image_bytes_decode_exactly_as_the_same_files(files, tmp_path, holder, color_mode):
    data = [p.read_bytes() for p in files]
    if holder == "bytes":
        values = data
    elif holder == "structs":
        values = pa.array([{"bytes": d, "path": p.name} for d, p in zip(data, files, strict=True)])
    else:
        table = pa.table({"image": pa.array(data, pa.binary())})
        with (
            pa.OSFile(str(tmp_path / "images.arrow"), "wb") as sink,
            pa.ipc.new_file(sink, table.schema) as writer,
        ):
            writer.write_table(table, max_chunksize=3)
        values = ArrowColumn.from_files([str(tmp_path / "images.arrow")], "image")
    options = {"size": (12, 10), "color_mode": color_mode, "dtype": "uint8"}
    np.testing.assert_array_equal(
        gather(ImageBytes(values, **options)), gather(ImageFiles(files, **options))
    )


def test_rows_pick_the_values_each_sample_reads():
    images = ImageBytes([id_png(i) for i in range(10)], size=(2, 2), rows=[7, 2, 2], dtype="uint8")
    assert images.shape == (3, 2, 2, 3)
    np.testing.assert_array_equal(gather(images)[:, 0, 0, 0], [7, 2, 2])


@pytest.mark.keras
def test_a_column_of_memory_mapped_files_pickles_as_paths(tmp_path):
    table = id_table(range(200))  # ~20 KB of PNGs
    with (
        pa.OSFile(str(tmp_path / "t.arrow"), "wb") as sink,
        pa.ipc.new_stream(sink, table.schema) as writer,
    ):
        writer.write_table(table)
    images = ImageBytes(ArrowColumn.from_files([str(tmp_path / "t.arrow")], "image"), (2, 2))
    sent = pickle.dumps(images)
    assert len(sent) < 4000, len(sent)
    np.testing.assert_array_equal(gather(pickle.loads(sent)), gather(images))


@pytest.mark.keras
def test_a_null_bytes_path_may_not_leave_the_root(tmp_path):
    values = pa.array([{"bytes": None, "path": "../secret.png"}])
    write_image(tmp_path / "secret.png", np.zeros((4, 4, 3), np.uint8))
    inside = tmp_path / "root"
    inside.mkdir()
    with pytest.raises(SampleError, match="leads outside the root folder"):
        gather(ImageBytes(values, (2, 2), root=inside))
    allowed = ImageBytes(values, (2, 2), root=inside, allow_outside_root=True)
    assert gather(allowed).shape == (1, 2, 2, 3)


@pytest.mark.keras
def test_values_that_are_not_images_are_refused_with_what_they_hold():
    with pytest.raises(TypeError, match="holds int64, which is not an image column"):
        ImageBytes(pa.array([1, 2]), (2, 2))
    with pytest.raises(TypeError, match="one encoded image per sample"):
        ImageBytes(b"\x89PNG", (2, 2))
    with pytest.raises(ValueError, match="rows must be row numbers of the 2 values"):
        ImageBytes([id_png(0), id_png(1)], (2, 2), rows=[0, 2])
