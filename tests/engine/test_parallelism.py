"""One owner of parallelism: a dataset says how many threads and processes it starts
(`describe_parallelism`), the count bounds what really runs, and one release stops them."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from multimodal_dataset import ImageFiles, MultimodalDataset
from multimodal_dataset.engine.parallelism import MAX_DEFAULT_THREADS, Parallelism


def image_dataset(image_files, **kwargs):
    images = ImageFiles(image_files, size=(8, 8))
    return MultimodalDataset(images, np.arange(len(image_files)), batch_size=4, **kwargs)


@pytest.mark.keras
def test_eight_worker_processes_decoding_in_two_threads_each_are_counted_as_such(image_files):
    ds = image_dataset(
        image_files, workers=8, use_multiprocessing=True, threads_per_worker=2, prefetch=2
    )
    report = ds.describe_parallelism()
    assert report.processes == 8
    # 2 decoding threads in each of the 8 workers and in the main process, 2 prefetching.
    assert report.threads == 2 * 9 + 2
    text = str(report)
    assert "8 worker processes" in text and "2 decoding threads" in text
    assert "up to 20 threads" in text


@pytest.mark.keras
def test_arrays_in_memory_start_nothing():
    ds = MultimodalDataset(np.zeros((10, 2)), np.zeros(10), batch_size=4)
    report = ds.describe_parallelism()
    assert (report.processes, report.threads) == (0, 0)
    assert "inline" in str(report)


@pytest.mark.keras
def test_the_threads_a_dataset_starts_stay_within_what_it_describes(image_files):
    before = frozenset(threading.enumerate())
    ds = image_dataset(image_files, workers=3, threads_per_worker=2, prefetch=2, shuffle=False)
    bound = ds.describe_parallelism().threads
    assert bound == 3 + 2 + 2
    seen: set[str] = set()
    most = 0
    ds.on_epoch_begin()
    for i in range(len(ds)):
        ds[i]
        ours = ours_alive(before)
        seen.update(ours)
        most = max(most, len(ours))
    ds.on_epoch_end()
    ds.close()  # one close stops every pool
    assert 0 < most <= bound
    assert any("decode" in name for name in seen)
    deadline = time.monotonic() + 5
    while ours_alive(before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ours_alive(before) == []


def ours_alive(before):
    """The package's pool threads (all named multimodal_dataset*) started since ``before``."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("multimodal_dataset") and t not in before and t.is_alive()
    ]


def test_threads_per_worker_defaults_to_the_cores_divided_among_worker_processes():
    cores = os.cpu_count() or 1
    assert Parallelism.make(1, False, None, 0).threads_per_worker == min(MAX_DEFAULT_THREADS, cores)
    assert Parallelism.make(4, True, None, 0).threads_per_worker == max(
        1, min(MAX_DEFAULT_THREADS, cores // 4)
    )


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_a_threads_per_worker_that_is_not_a_positive_integer_is_refused(bad):
    with pytest.raises((TypeError, ValueError), match="threads_per_worker"):
        Parallelism.make(1, False, bad, 0)


@pytest.mark.keras
def test_remote_reads_go_through_the_datasets_request_threads(image_files):
    import fsspec

    memory = fsspec.filesystem("memory")
    urls = []
    for path in image_files:
        urls.append(f"memory://parallelism/{path.name}")
        memory.pipe(urls[-1], path.read_bytes())
    before = frozenset(threading.enumerate())
    images = ImageFiles(urls, size=(8, 8))
    ds = MultimodalDataset(images, np.arange(len(urls)), batch_size=6, io_requests=3)
    report = ds.describe_parallelism()
    assert "3 storage requests in flight" in str(report)
    names = set()
    for i in range(len(ds)):
        ds[i]
        names.update(ours_alive(before))
    ds.close()
    # The dataset's io threads carried the requests (memory:// has no event loop), not a
    # pool of the source's storage.
    assert any(name.startswith("multimodal_dataset_io") for name in names)
    assert not any(name.startswith("multimodal_dataset_storage") for name in names)
    assert len({n for n in names if n.startswith("multimodal_dataset_io")}) <= 3
