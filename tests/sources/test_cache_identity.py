"""A new run checks its decoded cache by where each image is stored, never by reading it:
a row of an Arrow file, a member of a tar shard, an object's version. Nothing is read,
downloaded or hashed for an image the cache holds, and a rewritten file is decoded again."""

from __future__ import annotations

import io
import os
import tarfile
import time

import numpy as np
import pytest

from conftest import gather
from multimodal_dataset import ImageBytes, ImageFiles
from multimodal_dataset.io.arrow_column import ArrowColumn
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.tar_members import TarMembers
from multimodal_dataset.sources.images.decoding import ImageDecoder


@pytest.fixture
def reads(monkeypatch):
    """Counts the image bytes read from Arrow cells and tar members, and the images
    decoded."""
    counts = {"arrow": 0, "tar": 0, "decoded": 0}
    get, get_many, decode = ArrowColumn.get, TarMembers.get_many, ImageDecoder.decode

    def arrow_get(self, row):
        counts["arrow"] += 1
        return get(self, row)

    def tar_get_many(self, rows, requests=None):
        counts["tar"] += len(rows)
        return get_many(self, rows, requests)

    def decoding(self, data):
        counts["decoded"] += 1
        return decode(self, data)

    monkeypatch.setattr(ArrowColumn, "get", arrow_get)
    monkeypatch.setattr(TarMembers, "get_many", tar_get_many)
    monkeypatch.setattr(ImageDecoder, "decode", decoding)
    return counts


def write_arrow(path, encoded):
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"image": pa.array(encoded, pa.binary())})
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)


def open_arrow(path):
    return ArrowColumn.from_files([str(path)], "image")


def write_tar(path, encoded):
    with tarfile.open(path, "w") as tar:
        for i, data in enumerate(encoded):
            info = tarfile.TarInfo(f"{i:06d}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def open_tar(path):
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    return TarMembers(
        [str(path)],
        np.zeros(len(members), np.int32),
        np.array([m.offset_data for m in members]),
        np.array([m.size for m in members]),
        [m.name for m in members],
        max_bytes=1 << 20,
    )


COLUMNS = {
    "an Arrow file": (write_arrow, open_arrow, "arrow"),
    "a tar shard": (write_tar, open_tar, "tar"),
}


def cached(column, tmp_path):
    return ImageBytes(column, (8, 8), dtype="uint8", cache=tmp_path / "cache")


@pytest.mark.parametrize("kind", COLUMNS)
def test_a_new_run_serves_cached_images_without_reading_their_bytes(
    image_files, tmp_path, reads, kind
):
    write, open_, counter = COLUMNS[kind]
    encoded = [p.read_bytes() for p in image_files]
    expected = gather(ImageBytes(encoded, (8, 8), dtype="uint8"))
    write(tmp_path / "images", encoded)
    np.testing.assert_array_equal(gather(cached(open_(tmp_path / "images"), tmp_path)), expected)
    reads.update(arrow=0, tar=0, decoded=0)
    again = cached(open_(tmp_path / "images"), tmp_path)  # a new run over the same file
    np.testing.assert_array_equal(gather(again), expected)
    assert reads[counter] == 0 and reads["decoded"] == 0
    assert again.uncached().size == 0 and reads[counter] == 0


@pytest.mark.parametrize("kind", COLUMNS)
def test_a_rewritten_file_is_decoded_again_never_served_stale(image_files, tmp_path, reads, kind):
    write, open_, _ = COLUMNS[kind]
    encoded = [p.read_bytes() for p in image_files]
    expected = gather(ImageBytes(encoded, (8, 8), dtype="uint8"))
    write(tmp_path / "images", encoded)
    gather(cached(open_(tmp_path / "images"), tmp_path))
    encoded[2] = image_files[7].read_bytes()  # other bytes in row 2, then the file rewritten
    write(tmp_path / "images", encoded)
    later = time.time() + 5
    os.utime(tmp_path / "images", (later, later))
    served = gather(cached(open_(tmp_path / "images"), tmp_path))
    np.testing.assert_array_equal(served[2], expected[7])
    np.testing.assert_array_equal(np.delete(served, 2, 0), np.delete(expected, 2, 0))


def test_images_at_urls_are_checked_by_their_version_and_never_downloaded_again(
    image_files, tmp_path, monkeypatch
):
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    urls = []
    for p in image_files:
        memory.pipe(f"/cache-identity/{p.name}", p.read_bytes())
        urls.append(f"memory://cache-identity/{p.name}")
    expected = gather(ImageFiles(image_files, (8, 8), dtype="uint8"))
    first = ImageFiles(urls, (8, 8), dtype="uint8", cache=tmp_path / "cache")
    np.testing.assert_array_equal(gather(first), expected)

    def no_download(*args, **kwargs):
        raise AssertionError("an image the cache holds was downloaded")

    monkeypatch.setattr(Storage, "read", no_download)
    monkeypatch.setattr(Storage, "read_many", no_download)
    again = ImageFiles(urls, (8, 8), dtype="uint8", cache=tmp_path / "cache")
    np.testing.assert_array_equal(gather(again), expected)
    memory.rm("/cache-identity", recursive=True)
