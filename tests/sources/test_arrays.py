"""Memory-mapped .npy inputs: read a batch at a time, never wholly loaded, and sent to
worker processes as a path rather than a copy."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from multimodal_dataset import MultimodalDataset
from multimodal_dataset.testing import anonymous_rss_mib

pytestmark = pytest.mark.keras


def write_npy(path, rows, width, dtype=np.float32):
    """Writes rows whose every value is the row number, a chunk at a time."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(rows, width))
    for start in range(0, rows, 1024):
        stop = min(start + 1024, rows)
        out[start:stop] = np.arange(start, stop, dtype=dtype)[:, None]
    out.flush()
    del out
    return path


def test_a_full_epoch_over_a_memory_mapped_file_keeps_anonymous_memory_far_below_its_size(
    tmp_path,
):
    rows, width = 8192, 8192  # 256 MiB of float32
    path = write_npy(tmp_path / "big.npy", rows, width)
    try:
        ds = MultimodalDataset(str(path), np.arange(rows), batch_size=256, seed=0)
        before = peak = anonymous_rss_mib()
        seen = 0
        for i in range(len(ds)):
            x, y = ds[i]
            np.testing.assert_array_equal(x[:, 0], y)  # each row holds its own number
            seen += len(y)
            peak = max(peak, anonymous_rss_mib())
            del x, y
        assert seen == rows
        print(f"anonymous memory grew by {peak - before:.1f} MiB over a 256 MiB file")
        assert peak - before < 64, f"anonymous memory grew by {peak - before:.0f} MiB"
    finally:
        path.unlink()


@pytest.mark.parametrize("given", ["path", "str", "np.load"])
def test_a_npy_file_is_memory_mapped_whether_given_by_path_or_opened(tmp_path, given):
    path = write_npy(tmp_path / "x.npy", 100, 4)
    value = {"path": path, "str": str(path), "np.load": np.load(path, mmap_mode="r")}[given]
    ds = MultimodalDataset(value, np.arange(100), batch_size=10)
    assert isinstance(ds.input_structure.fields[0].array.array, np.memmap)
    x, y = ds[3]
    np.testing.assert_array_equal(x[:, 0], y)


def test_a_memory_map_pickles_as_its_path_not_its_contents(tmp_path):
    path = write_npy(tmp_path / "x.npy", 4096, 256)  # 4 MiB
    ds = MultimodalDataset(path, np.arange(4096), batch_size=64, seed=1)
    data = pickle.dumps(ds)
    assert len(data) < 100_000
    copy = pickle.loads(data)
    np.testing.assert_array_equal(copy[5][0], ds[5][0])


def test_a_slice_of_a_memory_map_pickles_with_its_own_values(tmp_path):
    path = write_npy(tmp_path / "x.npy", 100, 3)
    view = np.load(path, mmap_mode="r")[40:60]
    ds = MultimodalDataset(view, batch_size=20, shuffle=False)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ds))[0][0][:, 0], np.arange(40, 60))


def test_worker_processes_and_threads_read_memory_maps(tmp_path, worker_mode):
    path = write_npy(tmp_path / "x.npy", 500, 8, dtype=np.int64)
    ds = MultimodalDataset(path, np.arange(500), batch_size=50, seed=2, **worker_mode)
    try:
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.dtype == np.int32
            np.testing.assert_array_equal(x[:, 0], y)
    finally:
        ds.close()


def test_a_missing_npy_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"inputs\[1\]: no such \.npy file: .*nope\.npy"):
        MultimodalDataset((np.zeros((3, 2)), str(tmp_path / "nope.npy")))


def test_other_paths_point_at_the_sources_that_read_them(tmp_path):
    with pytest.raises(TypeError, match="ImageFiles"):
        MultimodalDataset(str(tmp_path / "photo.jpg"))


def test_an_object_npy_cannot_be_mapped_and_says_so(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="object arrays cannot be mapped"):
        MultimodalDataset(tmp_path / "objects.npy")
