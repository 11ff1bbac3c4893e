"""Reading over HTTP from a server that misbehaves (tests/quirky_http.py on 127.0.0.1):
an object replaced by another of the same size is never paired with stale cached data,
a server that never answers times out, server errors are retried and named, and a server
without range requests is named as such."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import ID_COLUMNS, id_table, ids_of, write_shards
from multimodal_dataset import from_table, from_webdataset
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.storage_errors import RetriesExhaustedError

pytest.importorskip("aiohttp")


@pytest.fixture
def server(tmp_path):
    """``(folder, url, set_quirks)``: ``folder`` served at ``url``."""
    folder = tmp_path / "served"
    folder.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-u", str(Path(__file__).parents[1] / "quirky_http.py"), str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = re.search(r"port (\d+)", process.stdout.readline()).group(1)

        def set_quirks(**quirks):
            (folder / ".quirks.json").write_text(json.dumps(quirks))

        yield folder, f"http://127.0.0.1:{port}", set_quirks
    finally:
        process.stdin.close()  # the server exits when its input closes
        process.wait(10)


def consistent(ds):
    """Whether every sample's image (its pixels encode an id) goes with its own id."""
    for i in range(len(ds)):
        (image, number), label = ds[i]
        assert np.array_equal(ids_of(((image, number), label)), np.asarray(label).astype(int))
    return True


def write_same_size(path, ids, mtime):
    pq.write_table(id_table(ids), path, compression="none", use_dictionary=False)
    os.utime(path, (mtime, mtime))


@pytest.mark.keras
@pytest.mark.parametrize("versioned", [True, False])
def test_an_object_replaced_by_another_of_the_same_size_is_never_paired_with_stale_images(
    server, tmp_path, versioned
):
    folder, url, set_quirks = server
    set_quirks(no_version=not versioned)
    path = folder / "t.parquet"
    write_same_size(path, np.arange(8), mtime=1_000_000)
    kwargs = {**ID_COLUMNS, "target": "label", "validation_split": 0, "shuffle": False}
    first, _ = from_table(f"{url}/t.parquet", **kwargs, batch_size=4, cache_dir=tmp_path / "c")
    size = path.stat().st_size
    write_same_size(path, np.arange(8)[::-1], mtime=2_000_000)  # other rows, same size
    assert path.stat().st_size == size
    second, _ = from_table(f"{url}/t.parquet", **kwargs, batch_size=4, cache_dir=tmp_path / "c")
    labels = np.concatenate([np.asarray(second[i][1]) for i in range(len(second))])
    np.testing.assert_array_equal(labels.astype(int), np.arange(8)[::-1])
    assert consistent(second) and consistent(first)


def test_a_server_that_never_answers_a_get_times_out_and_names_the_url(server, monkeypatch):
    monkeypatch.setattr("multimodal_dataset.io.storage.BACKOFF_S", 0.001)  # the timeouts count
    folder, url, set_quirks = server
    (folder / "a.bin").write_bytes(b"x" * 100)
    set_quirks(hang_get=True)
    import aiohttp

    storage = Storage({"client_kwargs": {"timeout": aiohttp.ClientTimeout(sock_read=0.3)}})
    start = time.monotonic()
    with pytest.raises(RetriesExhaustedError, match=r"a.bin' could not be read after 4 attempts"):
        storage.read(f"{url}/a.bin", 1000)
    assert time.monotonic() - start < 15


def test_http_requests_have_a_connect_and_a_read_timeout_by_default(server):
    from multimodal_dataset.io import filesystems as storage_module

    _, url, _ = server
    timeout = (
        Storage().filesystem(url).kwargs.get("timeout")
        or Storage().filesystem(url).client_kwargs["timeout"]
    )
    assert timeout.sock_read == storage_module.READ_TIMEOUT_S
    assert timeout.connect == storage_module.CONNECT_TIMEOUT_S


def test_server_errors_are_retried_and_reported_as_such_not_as_missing(server):
    folder, url, set_quirks = server
    (folder / "a.bin").write_bytes(b"abc")
    set_quirks(fail=2)  # two 500s, then the object
    storage = Storage()
    assert storage.info(f"{url}/a.bin")["size"] == 3
    set_quirks(fail=2)
    assert storage.read(f"{url}/a.bin", 10) == b"abc"
    set_quirks(fail=100)
    with pytest.raises(RetriesExhaustedError, match=r"after 4 attempts .*500"):
        storage.info(f"{url}/a.bin")
    set_quirks()
    with pytest.raises(FileNotFoundError, match=r"nothing.bin' does not exist"):
        storage.info(f"{url}/nothing.bin")


def test_a_refused_connection_is_retried_and_named_not_called_missing():
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetriesExhaustedError, match=r"could not be read after 4 attempts"):
        Storage().info(f"http://127.0.0.1:{port}/a.bin")


def remote_shard(url, tmp_path):
    train, _ = from_webdataset(
        f"{url}/00000.tar",
        image="png",
        image_size=(2, 2),
        target="cls",
        validation_split=0,
        cache_dir=tmp_path / "c",
    )
    return train


@pytest.mark.keras
def test_a_shard_index_read_through_a_failing_server_is_retried(server, tmp_path):
    folder, url, set_quirks = server
    write_shards(folder, np.arange(6), shards=1)
    set_quirks(fail_range=1)  # the first read of the shard's headers
    assert remote_shard(url, tmp_path).num_samples == 6


@pytest.mark.keras
def test_a_server_that_ignores_range_requests_is_named_as_such(server, tmp_path):
    folder, url, set_quirks = server
    write_shards(folder, np.arange(6), shards=1)
    train = remote_shard(url, tmp_path)
    set_quirks(ignore_range=True)
    with pytest.raises(Exception, match=r"does not support range requests"):
        train[0]


def test_a_server_that_sends_no_length_is_named_as_not_supporting_ranges(server, tmp_path):
    folder, url, set_quirks = server
    write_shards(folder, np.arange(6), shards=1)
    set_quirks(no_length=True)
    with pytest.raises(ValueError, match=r"00000.tar' cannot be indexed: .*range requests"):
        remote_shard(url, tmp_path)
