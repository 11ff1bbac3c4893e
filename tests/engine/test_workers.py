"""Worker pools: errors that cannot be pickled and workers that die are named with their
batch, a broken pool is replaced, and pools do not outlive their use on any backend."""

from __future__ import annotations

import os
import threading
import time

import keras
import numpy as np
import pytest

from multimodal_dataset import MultimodalDataset, Source, WorkerError
from multimodal_dataset.engine import gatherer as workers_module
from worker_sources import Failing

pytestmark = pytest.mark.keras


def dataset(how):
    return MultimodalDataset(
        Failing(12, bad=5, how=how),
        np.arange(12),
        batch_size=6,
        shuffle=False,
        workers=2,
        use_multiprocessing=True,
    )


def test_an_exception_that_cannot_be_unpickled_reaches_the_caller_with_its_message(
    start_method,
):
    ds = dataset("unpicklable")
    try:
        with pytest.raises(
            WorkerError,
            match=r"raised worker_sources\.UnpicklableError: sample 5: "
            r"the custom error's message",
        ) as info:
            ds[0]
        assert "Worker traceback" in str(info.value)
        assert ds[1][1].tolist() == list(range(6, 12))  # the pool still works
    finally:
        ds.close()


def test_a_worker_killed_by_the_os_is_named_with_its_batch_and_the_next_batch_recovers(
    start_method,
):
    ds = dataset("kill")
    try:
        with pytest.raises(
            WorkerError,
            match=r"died while gathering batch 0 of epoch 0 "
            r"\(samples 0, 1, 2, 3, 4, 5\).*out-of-memory killer",
        ):
            ds[0]
        assert ds[1][1].tolist() == list(range(6, 12))  # a fresh pool
        with pytest.raises(WorkerError, match="died"):
            ds[0]
        assert ds[1][1].tolist() == list(range(6, 12))
    finally:
        ds.close()


@pytest.mark.backend
def test_fit_after_a_dead_worker_starts_a_fresh_pool(start_method):
    ds = dataset("kill")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    try:
        for _ in range(2):
            with pytest.raises(Exception, match="died while gathering"):
                model.fit(ds, epochs=1, verbose=0)
        healthy = MultimodalDataset(
            np.arange(12.0), np.arange(12), batch_size=6, workers=2, use_multiprocessing=True
        )
        model.fit(healthy, epochs=1, verbose=0)
        healthy.close()
    finally:
        ds.close()


def python_threads():
    """Threads Python started, ours among them; not TensorFlow's native tf.data threads, which
    Python lists as "dummy" threads from the first time each calls into Python and never forgets
    (a CI run saw 20 -> 22 that way, with no pool of ours left)."""
    return [t for t in threading.enumerate() if not isinstance(t, threading._DummyThread)]


def resources():
    import multiprocessing

    return (
        len(python_threads()),
        len(multiprocessing.active_children()),
        len(os.listdir("/proc/self/fd")),
    )


@pytest.mark.backend
@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_pools_are_released_after_fit_whatever_the_backend_keeps_alive(monkeypatch, mode):
    """TensorFlow keeps every dataset given to fit alive; their pools must not pile up."""
    monkeypatch.setattr(workers_module, "KEEP_ALIVE_S", 0.05)
    kwargs = {"workers": 3} if mode == "threads" else {"workers": 2, "use_multiprocessing": True}
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((64, 2), "float32"), np.zeros(64, "float32")
    kept = []

    def fit_once():
        ds = MultimodalDataset(x, y, batch_size=8, **kwargs)
        kept.append(ds)  # as TensorFlow does
        model.fit(ds, epochs=2, verbose=0)

    def settled(baseline=None, deadline_s=15.0):
        """The resources once the pools' keep-alive timers have run: polled, because a
        loaded machine runs the timers late; a pile-up stays past the deadline."""
        time.sleep(0.5)
        end = time.monotonic() + deadline_s
        while True:
            now = resources()
            released = now[1] == 0 and (
                baseline is None or (now[0] <= baseline[0] + 1 and now[2] <= baseline[2] + 2)
            )
            if released or time.monotonic() > end:
                return now
            time.sleep(0.1)

    fit_once()
    threads, children, fds = baseline = settled()
    for _ in range(5):
        fit_once()
    after = settled(baseline)
    names = sorted(t.name for t in python_threads())
    assert after[0] <= threads + 1, f"threads {threads} -> {after[0]}: {names}"
    assert after[1] == children == 0, f"child processes {children} -> {after[1]}"
    assert after[2] <= fds + 2, f"open files {fds} -> {after[2]}"


class SlowToClose(Source):
    """A source whose ``close`` takes a while (closing files, joining threads) and whose
    reads fail while it runs, as reading a closed file descriptor does."""

    def __init__(self) -> None:
        self.closing = False

    @property
    def shape(self):
        return (64, 1)

    @property
    def dtype(self):
        return np.dtype("float32")

    def gather(self, indices, context):
        if self.closing:
            raise OSError("[Errno 9] Bad file descriptor")
        return indices[:, None].astype("float32")

    def close(self):
        self.closing = True
        time.sleep(0.3)
        self.closing = False


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_batch_requested_while_the_pools_are_released_waits_for_the_release(prefetch):
    ds = MultimodalDataset(SlowToClose(), np.zeros(64, "float32"), batch_size=8, prefetch=prefetch)
    for i in range(len(ds)):
        ds[i]
    ds._gatherer.release_soon(delay=0.01)
    time.sleep(0.1)  # the release has begun: the source is closing
    ds.on_epoch_begin()
    # Served once the release is over, never from a closing source.
    ids = np.concatenate([ds[i][0][:, 0] for i in range(len(ds))])
    assert sorted(ids.astype(int).tolist()) == list(range(64))
    ds.close()


def our_threads(before=frozenset()):
    """The package's threads (every pool it starts names them multimodal_dataset*) not in
    ``before``: other libraries' threads, started in the background by an earlier
    test (an fsspec event loop's default executor, say), come and go as they please, and
    an earlier test's pools may still be in their keep-alive."""
    return sorted(
        t.name
        for t in threading.enumerate()
        if t.name.startswith("multimodal_dataset") and t not in before
    )


def threads_now():
    return frozenset(threading.enumerate())


def settle(condition, deadline_s=10.0):
    """Polls ``condition`` until it holds or the deadline passes (a loaded machine runs
    timers and thread exits late); returns its last value."""
    end = time.monotonic() + deadline_s
    while not (held := condition()) and time.monotonic() < end:
        time.sleep(0.05)
    return held


@pytest.mark.backend
@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_pools_are_released_after_a_fit_that_raised(monkeypatch, image_files, tmp_path, mode):
    """fit stops at a bad sample without calling on_epoch_end: the pools go all the same."""
    from multimodal_dataset import ImageFiles

    monkeypatch.setattr(workers_module, "KEEP_ALIVE_S", 0.05)
    kwargs = {"workers": 3} if mode == "threads" else {"workers": 2, "use_multiprocessing": True}
    before = threads_now()
    paths = list(image_files)
    paths[11] = tmp_path / "missing.png"  # the last batch: fit has started training
    ds = MultimodalDataset(
        ImageFiles(paths, size=(8, 8)), np.arange(12) % 2, batch_size=4, shuffle=False, **kwargs
    )
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(Exception, match=r"missing\.png"):
        model.fit(ds, epochs=1, verbose=0)
    import multiprocessing

    assert settle(lambda: not multiprocessing.active_children()), "worker processes left"
    assert settle(lambda: our_threads(before) == []), our_threads(before)


@pytest.mark.backend
@pytest.mark.parametrize("mode", ["threads", "processes"])
@pytest.mark.timed
def test_a_dataset_nobody_references_releases_its_pools_at_once(backend, mode):
    """A hyper-parameter search builds a dataset per fit and drops it: its pools go with
    it, not when the keep-alive timer fires. TensorFlow keeps every dataset given to fit
    referenced (tf.data's generator registry): there the keep-alive timer releases them."""
    import multiprocessing

    kwargs = {"workers": 3} if mode == "threads" else {"workers": 2, "use_multiprocessing": True}
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((64, 2), "float32"), np.zeros(64, "float32")
    before = threads_now()
    start = time.monotonic()
    for _ in range(6):
        model.fit(MultimodalDataset(x, y, batch_size=8, **kwargs), epochs=2, verbose=0)
    if tuple(int(v) for v in keras.version().split(".")[:2]) < (3, 10):
        import gc

        gc.collect()  # older Keras holds a fitted dataset in a reference cycle
    deadline_s = 1.0 if backend != "tensorflow" else workers_module.KEEP_ALIVE_S + 5
    assert deadline_s < workers_module.KEEP_ALIVE_S or backend == "tensorflow"
    released = settle(
        lambda: our_threads(before) == [] and not multiprocessing.active_children(),
        deadline_s=deadline_s,
    )
    names = our_threads(before)
    children = multiprocessing.active_children()
    assert released, f"{time.monotonic() - start:.1f} s: {names}, {children}"


# What a spawned worker imports: only what gathering needs. A worker unpickles the
# dataset's sources, which imports their modules; the package's __init__ imports its
# public names on first use, so neither Keras nor a backend comes with them.
HEAVY = ("keras", "jax", "tensorflow", "torch", "multimodal_dataset.dataset")


def spawned_dataset(kind, tmp_path, example, parquet_example):
    from conftest import COLUMNS, write_shards
    from multimodal_dataset import from_table, from_webdataset

    processes = {"workers": 2, "use_multiprocessing": True, "batch_size": 8, "seed": 0}
    if kind == "arrays":
        ids = np.arange(20)
        return MultimodalDataset((ids[:, None], ids[:, None] * 2.0), ids, **processes)
    if kind == "image files, text, numbers":
        return from_table(example, **COLUMNS, **processes)[0]
    if kind == "Parquet images":
        return from_table(parquet_example, **COLUMNS, **processes)[0]
    write_shards(tmp_path, np.arange(12), shards=2)
    shards = str(tmp_path / "{00000..00001}.tar")
    return from_webdataset(
        shards, image="png", numeric=["json.id"], target="cls", image_size=(2, 2), **processes
    )[0]


@pytest.mark.parametrize(
    "kind", ["arrays", "image files, text, numbers", "Parquet images", "WebDataset shards"]
)
def test_a_spawned_worker_imports_neither_keras_nor_a_backend(
    kind, tmp_path, example, parquet_example
):
    import multiprocessing

    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("spawn", force=True)
    try:
        ds = spawned_dataset(kind, tmp_path, example, parquet_example)
        ds[0]  # starts the pool and gathers in it
        pool = ds._gatherer._get_executor()
        # eval is a builtin: pickled by name, it imports nothing in the worker.
        loaded = pool.submit(eval, "sorted(__import__('sys').modules)").result(timeout=60)
    finally:
        multiprocessing.set_start_method(previous, force=True)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY)
    assert "multimodal_dataset.engine.gathering" in loaded  # what a worker runs
    assert heavy == []
