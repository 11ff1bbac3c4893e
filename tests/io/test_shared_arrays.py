"""Per-sample arrays reach worker processes as files they map, never as copies: a large
in-memory array is written once to a temporary .npy and pickles as its path."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest

from multimodal_dataset import NumericColumns, TextTokens
from multimodal_dataset.io.spilled import SPILL_MIN_BYTES
from multimodal_dataset.sources.arrays import ArraySource

ROWS = 2 * SPILL_MIN_BYTES // 4  # float32 or int32 columns of 2 MiB


def _texts():
    return TextTokens([f"word{i % 7} other{i % 3}" for i in range(ROWS // 8)], length=16)


SOURCES = {
    "an array": lambda: ArraySource(np.arange(ROWS, dtype=np.float32), "inputs", np.float32),
    "token ids": _texts,
    "numeric columns": lambda: NumericColumns({"a": np.arange(ROWS, dtype=np.float64)}),
}


@pytest.mark.parametrize(
    "kind",
    ["an array", "token ids", pytest.param("numeric columns", marks=pytest.mark.keras)],
)
def test_a_large_array_pickles_as_a_path_and_reads_the_same(kind):
    source = SOURCES[kind]()
    arrays = sum(v.nbytes for v in vars(source).values() if isinstance(v, np.ndarray))
    message = pickle.dumps(source)
    assert len(message) < arrays / 10, f"{len(message):,} of {arrays:,} bytes: copied"
    copy = pickle.loads(message)
    for name, array in vars(source).items():
        if isinstance(array, np.ndarray) and name != "_shared":
            np.testing.assert_array_equal(vars(copy)[name], array)
            if array.nbytes >= SPILL_MIN_BYTES:
                assert isinstance(vars(copy)[name], np.memmap), name
    assert len(pickle.dumps(source)) == len(message)  # written once: the same file again


def test_the_file_goes_with_the_source():
    source = ArraySource(np.ones(ROWS, dtype=np.float32), "inputs", np.dtype("float32"))
    copy = pickle.loads(pickle.dumps(source))
    path = copy.array.filename
    del copy, source
    gc.collect()
    assert not __import__("os").path.exists(path)


def test_small_arrays_pickle_as_they_are():
    source = ArraySource(np.arange(100, dtype=np.float32), "inputs", np.dtype("float32"))
    assert not isinstance(pickle.loads(pickle.dumps(source)).array, np.memmap)


@pytest.mark.keras
def test_spawned_workers_read_the_shared_files_and_serve_the_same_stream():
    import multiprocessing

    from multimodal_dataset import MultimodalDataset, testing

    images = np.arange(ROWS * 2, dtype=np.float32).reshape(ROWS // 2, 4)  # 2 MiB
    labels = np.arange(ROWS // 2) % 3
    alone = MultimodalDataset(images, labels, batch_size=4096, seed=0)
    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("spawn", force=True)
    try:
        spawned = MultimodalDataset(
            images, labels, batch_size=4096, seed=0, workers=2, use_multiprocessing=True
        )
        assert testing.stream_digest(spawned, epochs=1) == testing.stream_digest(alone, epochs=1)
        spawned.close()
    finally:
        multiprocessing.set_start_method(previous, force=True)


@pytest.mark.keras
def test_image_paths_are_two_arrays_not_a_string_each_and_pickle_as_files():
    from multimodal_dataset import ImageFiles
    from multimodal_dataset.io.shared import Strings

    given = [f"images/{i:07d}.jpg" for i in range(200_000)]  # 3.8 MB of paths
    images = ImageFiles(given, size=(8, 8))
    assert isinstance(images.paths, Strings) and images.paths == given
    assert images.paths[0] == "images/0000000.jpg" and images.paths[-1] == given[-1]
    message = pickle.dumps(images)
    assert len(message) < len(pickle.dumps(given)) / 10
    copy = pickle.loads(message)
    assert isinstance(copy.paths.data, np.memmap) and copy.paths == images.paths
    assert copy.where(123_456) == "image file 'images/0123456.jpg'"


def test_strings_keep_any_text_a_path_may_hold():
    from multimodal_dataset.io.shared import Strings

    values = ["", "café/ü.png", "a\udcff.jpg", "s3://bucket/key with space.jpg", ""]
    strings = Strings.of(values)
    assert list(strings) == values and len(strings) == 5 and strings[1:3] == values[1:3]
    assert pickle.loads(pickle.dumps(strings)) == strings
    with pytest.raises(IndexError):
        strings[5]
