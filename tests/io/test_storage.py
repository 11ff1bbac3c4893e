"""Remote storage: URLs are told from paths and joined like them; objects are read
bounded, a batch concurrently (a slow object holds one slot, not the others), transient
failures retried a bounded number of times and counted in the error, permanent ones
raised at once; and every kind of path (table, Parquet and Arrow files, image paths,
shards, saved preprocessing) reads the same from a URL as from disk."""

from __future__ import annotations

import pickle
import threading
import time
from typing import ClassVar

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from conftest import ID_COLUMNS, id_table, ids_of, write_shards
from multimodal_dataset import (
    ImageFiles,
    SampleError,
    TablePreprocessing,
    from_table,
    from_webdataset,
    make_example,
    testing,
)
from multimodal_dataset.io.files import FileTooLargeError
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.storage_errors import RetriesExhaustedError
from multimodal_dataset.io.urls import inside, is_remote, join, protocol_of


class Memory(MemoryFileSystem):
    """The memory file system (one store) under another protocol."""

    @classmethod
    def _strip_protocol(cls, path):
        return MemoryFileSystem._strip_protocol("memory://" + path.split("://", 1)[-1])


class Flaky(Memory):
    """A memory file system whose reads of some objects fail a given number of times."""

    protocol = ("flaky",)
    failures: ClassVar[dict[str, int]] = {}
    calls: ClassVar[list[str]] = []

    def cat_file(self, path, start=None, end=None, **kwargs):
        path = self._strip_protocol(path)
        Flaky.calls.append(path)
        if Flaky.failures.get(path, 0):
            Flaky.failures[path] -= 1
            raise ConnectionResetError("connection reset by peer")
        return super().cat_file(path, start, end, **kwargs)


class Slow(Memory):
    """A memory file system that answers each object after its delay, noting when."""

    protocol = ("slow",)
    delays: ClassVar[dict[str, float]] = {}
    finished: ClassVar[dict[str, float]] = {}

    def cat_file(self, path, start=None, end=None, **kwargs):
        path = self._strip_protocol(path)
        time.sleep(Slow.delays.get(path, 0.0))
        Slow.finished[path] = time.perf_counter()
        return super().cat_file(path, start, end, **kwargs)


fsspec.register_implementation("flaky", Flaky, clobber=True)
fsspec.register_implementation("slow", Slow, clobber=True)


@pytest.fixture
def memory():
    fs = fsspec.filesystem("memory")
    yield fs
    fs.rm("/", recursive=True)
    Flaky.failures.clear()
    Flaky.calls.clear()


@pytest.mark.parametrize(
    ("path", "protocol", "remote"),
    [
        ("s3://bucket/a.tar", "s3", True),
        ("gs://bucket/a.tar", "gs", True),
        ("https://host/a.tar", "https", True),
        ("memory://a.tar", "memory", True),
        ("file:///data/a.tar", "file", False),
        ("/data/a.tar", None, False),
        ("C:/data/a.tar", None, False),
        ("data/a.tar", None, False),
    ],
)
def test_urls_are_told_from_local_paths(path, protocol, remote):
    assert protocol_of(path) == protocol
    assert is_remote(path) is remote


@pytest.mark.parametrize(
    ("folder", "path", "joined"),
    [
        ("s3://bucket/data", "images/a.jpg", "s3://bucket/data/images/a.jpg"),
        ("s3://bucket/data", "gs://other/a.jpg", "gs://other/a.jpg"),
        ("/data", "s3://bucket/a.jpg", "s3://bucket/a.jpg"),
        ("/data", "images/a.jpg", "/data/images/a.jpg"),
    ],
)
def test_relative_paths_join_a_url_folder_and_urls_stay_as_they_are(folder, path, joined):
    assert join(folder, path) == joined


@pytest.mark.parametrize(
    ("path", "inside_root"),
    [
        ("images/a.jpg", True),
        ("images/../a.jpg", True),
        ("../secret.jpg", False),
        ("images/../../secret.jpg", False),
        ("s3://bucket/data/a.jpg", True),
        ("s3://bucket/database/a.jpg", False),
        ("s3://other/a.jpg", False),
        ("gs://bucket/data/a.jpg", False),
    ],
)
def test_a_path_may_not_climb_out_of_a_url_root(path, inside_root):
    root = "s3://bucket/data"
    assert inside(path, join(root, path), root) is inside_root


def test_a_url_is_never_inside_a_local_root(tmp_path):
    assert not inside("s3://bucket/a.jpg", "s3://bucket/a.jpg", str(tmp_path))


def test_an_object_is_read_bounded_and_a_missing_one_is_named(memory):
    memory.pipe("memory://b/a.bin", b"x" * 100)
    storage = Storage()
    assert storage.read("memory://b/a.bin", 100) == b"x" * 100
    with pytest.raises(FileTooLargeError, match=r"'memory://b/a.bin' has more than max_file"):
        storage.read("memory://b/a.bin", 99)
    with pytest.raises(FileNotFoundError, match=r"'memory://b/gone.bin' does not exist"):
        storage.read("memory://b/gone.bin", 100)


def test_an_empty_object_reads_as_no_bytes(memory):
    memory.pipe("memory://b/empty", b"")
    assert Storage().read("memory://b/empty", 10) == b""


def test_transient_failures_are_retried_until_the_read_succeeds(memory):
    memory.pipe("memory://b/a.bin", b"data")
    Flaky.failures["/b/a.bin"] = 2
    assert Storage().read("flaky://b/a.bin", 10) == b"data"
    assert len(Flaky.calls) == 3


def test_a_failure_outlasting_the_retries_names_the_url_and_the_attempts(memory, monkeypatch):
    monkeypatch.setattr("multimodal_dataset.io.storage.BACKOFF_S", 0.001)
    memory.pipe("memory://b/a.bin", b"data")
    Flaky.failures["/b/a.bin"] = 100
    with pytest.raises(
        RetriesExhaustedError,
        match=r"'flaky://b/a.bin' could not be read after 3 attempts \(ConnectionResetError",
    ):
        Storage(retries=2).read("flaky://b/a.bin", 10)
    assert len(Flaky.calls) == 3


def test_a_missing_object_is_not_retried(memory):
    with pytest.raises(FileNotFoundError):
        Storage().read("flaky://b/gone.bin", 10)
    assert len(Flaky.calls) == 1


def test_a_batch_is_fetched_concurrently_and_a_slow_object_holds_only_its_slot(memory):
    urls = [f"slow://b/{i}" for i in range(25)]
    for url in urls:
        memory.pipe(url.replace("slow", "memory"), url.encode())
    Slow.delays.update({f"/b/{i}": 0.1 for i in range(1, 25)})
    Slow.delays["/b/0"] = 1.5  # the first object is slow
    started = time.perf_counter()
    got = Storage(max_requests=4).read_many(urls, 100)
    elapsed = time.perf_counter() - started
    assert got == [url.encode() for url in urls]
    # Three slots served the 24 fast objects (0.8 s) while the slow one held the fourth.
    assert all(Slow.finished[f"/b/{i}"] < Slow.finished["/b/0"] for i in range(1, 25))
    assert elapsed < 1.5 + 0.1 * 24 / 2  # far less than in turn (3.9 s) or in waves of 4


def test_storage_pickles_as_its_options_and_makes_its_own_file_systems(memory):
    storage = Storage()
    memory.pipe("memory://b/a.bin", b"data")
    storage.read("memory://b/a.bin", 10)
    copy = pickle.loads(pickle.dumps(storage))
    assert copy._systems == {} and copy.read("memory://b/a.bin", 10) == b"data"


def test_storage_options_must_be_a_dict():
    with pytest.raises(TypeError, match="storage_options must be a dict"):
        Storage("key=secret")  # type: ignore[arg-type]


def test_a_protocol_whose_package_is_missing_names_the_extra(monkeypatch):
    def missing(protocol, **options):
        raise ImportError("Install gcsfs to access Google Storage")

    monkeypatch.setattr(fsspec, "filesystem", missing)
    with pytest.raises(ImportError, match=r"multimodal-dataset\[gcs\]"):
        Storage().read("gs://bucket/a.jpg", 10)


def test_threads_share_one_storage(memory):
    memory.pipe("memory://b/a.bin", b"data")
    storage, results = Storage(), []
    threads = [
        threading.Thread(target=lambda: results.append(storage.read("memory://b/a.bin", 10)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [b"data"] * 8


# ------------------------------------------------------- every path may be a URL


def copy_to_memory(memory, local, url):
    for path in sorted(local.rglob("*")):
        if path.is_file():
            memory.pipe(f"{url}/{path.relative_to(local).as_posix()}", path.read_bytes())


@pytest.mark.keras
@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_a_csv_at_a_url_reads_its_images_relative_to_it(memory, tmp_path, scheme):
    manifest = make_example(tmp_path / "csv", samples=12, seed=2)
    copy_to_memory(memory, tmp_path / "csv", "memory://csv")
    url = "memory://csv/manifest.csv" if scheme == "memory" else f"file://{manifest}"
    kwargs = {"image": "image", "target": "label", "image_size": (4, 4), "batch_size": 4}
    remote, _ = from_table(url, **kwargs)
    local, _ = from_table(str(manifest), **kwargs)
    assert testing.stream_digest(remote) == testing.stream_digest(local)


@pytest.mark.keras
@pytest.mark.parametrize("kind", ["parquet", "feather", "uncompressed arrow"])
def test_table_files_at_urls_read_as_the_same_files_on_disk(memory, tmp_path, kind):
    table = id_table(range(20))
    path = tmp_path / f"t.{'parquet' if kind == 'parquet' else 'arrow'}"
    if kind == "parquet":
        pq.write_table(table, path, row_group_size=6)
    else:
        compression = "lz4" if kind == "feather" else "uncompressed"
        feather.write_feather(table, str(path), compression=compression)
    memory.pipe(f"memory://tables/{path.name}", path.read_bytes())
    kwargs = {**ID_COLUMNS, "target": "label", "batch_size": 4}
    remote, _ = from_table(f"memory://tables/{path.name}", **kwargs)
    local, _ = from_table(str(path), **kwargs)
    assert testing.stream_digest(remote) == testing.stream_digest(local)


@pytest.mark.keras
def test_shards_and_saved_preprocessing_at_urls_read_as_on_disk(memory, tmp_path):
    write_shards(tmp_path / "wds", np.arange(15), shards=2)
    copy_to_memory(memory, tmp_path / "wds", "memory://wds")
    kwargs = {"image": "png", "text": "txt", "target": "cls", "image_size": (2, 2)}
    remote, _ = from_webdataset("memory://wds/*.tar", **kwargs, text_length=3, batch_size=4)
    local, _ = from_webdataset(
        str(tmp_path / "wds" / "*.tar"), **kwargs, text_length=3, batch_size=4
    )
    assert testing.stream_digest(remote) == testing.stream_digest(local)
    remote.preprocessing.save("memory://model/preprocessing.json")
    loaded = TablePreprocessing.load("memory://model/preprocessing.json")
    assert loaded.to_dict() == remote.preprocessing.to_dict()


def test_a_truncated_shard_at_a_url_is_named(memory, tmp_path):
    (path,) = write_shards(tmp_path, np.arange(5), shards=1)
    data = path.read_bytes()
    memory.pipe("memory://wds/00000.tar", data[: len(data) // 2 + 100])
    with pytest.raises(ValueError, match=r"memory://wds/00000.tar.*(truncated|corrupt)"):
        from_webdataset(
            "memory://wds/00000.tar", image="png", image_size=(2, 2), validation_split=0
        )


@pytest.mark.keras
def test_image_urls_outside_a_url_root_are_refused():
    paths = ["a.jpg", "../other/b.jpg", "s3://elsewhere/c.jpg"]
    with pytest.raises(SampleError, match=r"'../other/b.jpg' leads outside the root folder"):
        ImageFiles(paths, (4, 4), root="s3://bucket/images")
    images = ImageFiles(paths, (4, 4), root="s3://bucket/images", on_error="replace")
    assert images.paths == [
        "s3://bucket/images/a.jpg",
        "s3://bucket/images/../other/b.jpg",
        "s3://elsewhere/c.jpg",
    ]
    assert sorted(images._outside) == [1, 2]


@pytest.mark.keras
def test_a_pyarrow_table_with_image_urls_reads_them_with_the_storage_options(memory, tmp_path):
    make_example(tmp_path / "csv", samples=6, seed=2)
    copy_to_memory(memory, tmp_path / "csv", "memory://csv")
    table = pa.table(
        {"image": [f"memory://csv/images/{i:05d}.jpg" for i in range(6)], "y": list(range(6))}
    )
    train, _ = from_table(
        table,
        image="image",
        target="y",
        image_size=(4, 4),
        root="memory://csv",
        validation_split=0,
        shuffle=False,
        batch_size=6,
    )
    assert train[0][0].shape == (6, 4, 4, 3)


@pytest.fixture
def http_folder(tmp_path):
    """``tmp_path`` served over HTTP on 127.0.0.1 by Python's http.server (a subprocess)."""
    import re
    import subprocess
    import sys

    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = re.search(r"port (\d+)", server.stdout.readline()).group(1)
        yield tmp_path, f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.keras
def test_a_csv_over_http_reads_its_images_relative_to_it(http_folder):
    folder, url = http_folder
    manifest = make_example(folder / "csv", samples=8, seed=2)
    kwargs = {"image": "image", "target": "label", "image_size": (4, 4), "batch_size": 4}
    remote, _ = from_table(f"{url}/csv/manifest.csv", **kwargs)
    local, _ = from_table(str(manifest), **kwargs)
    assert testing.stream_digest(remote) == testing.stream_digest(local)


@pytest.mark.keras
def test_image_cells_without_bytes_fall_back_to_paths_beside_a_remote_table(memory, tmp_path):
    from conftest import id_png

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    cells = [{"bytes": None, "path": f"images/{i}.png"} for i in range(6)]
    table = pa.table(
        {"image": pa.array(cells, image_type), "id": list(range(6)), "label": list(range(6))}
    )
    pq.write_table(table, tmp_path / "t.parquet")
    memory.pipe("memory://tables/t.parquet", (tmp_path / "t.parquet").read_bytes())
    for i in range(5):  # image 5 is missing
        memory.pipe(f"memory://tables/images/{i}.png", id_png(i))
    kwargs = {**ID_COLUMNS, "target": "label", "validation_split": 0, "shuffle": False}
    train, _ = from_table("memory://tables/t.parquet", **kwargs, batch_size=5)
    np.testing.assert_array_equal(ids_of(train[0]), np.arange(5))
    with pytest.raises(SampleError, match=r"'memory://tables/images/5.png' does not exist"):
        train[1]
