"""Checks for your own sources and datasets, the same ones the library's suite runs on its
own: run them in your tests.

```python
from multimodal_dataset import testing

testing.check_source(MySource(...))          # the source contract
testing.check_resumable(MultimodalDataset(...))  # get_state / set_state continue the stream
digest = testing.stream_digest(ds, epochs=2)   # the same on every backend and worker mode
```
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import select
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from multimodal_dataset.dataset import MultimodalDataset
from multimodal_dataset.sources.protocol import GatherContext, Source


def stream_digest(ds: MultimodalDataset, epochs: int = 2) -> str:
    """SHA-256 of ``epochs`` epochs of the batch stream (dtypes, shapes and bytes), from
    the dataset's current epoch on; the dataset ends ``epochs`` epochs later."""
    import keras

    digest = hashlib.sha256()
    for _ in range(epochs):
        for i in range(len(ds)):
            for array in keras.tree.flatten(ds[i]):
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(np.ascontiguousarray(array).tobytes())
        ds.on_epoch_end()
    return digest.hexdigest()


def anonymous_rss_mib(pid: int | None = None) -> float:
    """A process's anonymous resident memory in MiB (heap, not file-backed pages: a
    memory map's pages do not count), from ``/proc`` (Linux).

    Args:
        pid: The process; None for this one.
    """
    where = f"/proc/{'self' if pid is None else pid}/status"
    with open(where) as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no RssAnon in {where} (anonymous memory is read on Linux)")


def child_pids() -> list[int]:
    """The process ids of this process's children (worker processes), from ``/proc``."""
    children: list[int] = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                children.extend(int(pid) for pid in f.read().split())
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return sorted(set(children))


def check_source(source: Source, *, seed: int = 0, epochs: int = 2) -> None:
    """Checks the contract every `Source` keeps, raising AssertionError on a breach.

    - ``gather`` returns the declared ``shape[1:]`` and ``dtype``;
    - gathering an index array equals gathering each index and stacking (any order,
      repeats allowed);
    - the source pickles (worker processes receive it) and gathers the same after;
    - values are a pure function of ``(seed, epoch, index)``: gathering again gives the
      same values, and random augmentation may change only with the epoch;
    - a variable-length source (``buckets``) pads to the width it is given, and without
      one to a bucket boundary that holds the batch's longest sample.
    """
    n = len(source)
    assert n == source.shape[0] >= 1, f"len {n} must be shape[0] {source.shape[0]} and >= 1"
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, n, size=min(n, 7) + 1)  # some repeat
    for epoch in range(epochs):
        batch = _gather(source, indices, seed, epoch)
        assert batch.shape == (len(indices), *source.shape[1:]), (
            f"gather returned {batch.shape}, declared {(len(indices), *source.shape[1:])}"
        )
        assert batch.dtype == source.dtype, (
            f"gather returned {batch.dtype}, declared {source.dtype}"
        )
        one_by_one = np.concatenate(
            [_gather(source, indices[k : k + 1], seed, epoch) for k in range(len(indices))]
        )
        np.testing.assert_array_equal(batch, one_by_one, "a batch differs from its samples")
        np.testing.assert_array_equal(
            batch, _gather(source, indices, seed, epoch), "gathering again differs"
        )
        copy = pickle.loads(pickle.dumps(source))
        np.testing.assert_array_equal(
            batch, _gather(copy, indices, seed, epoch), "a pickled copy gathers differently"
        )
        buckets = source.buckets
        if buckets is not None and len(buckets) > 1:
            own = source.gather(np.asarray(indices), GatherContext("source", seed, epoch))
            longest = int(np.max(source.lengths[indices]))
            assert own.shape[-1] in buckets and own.shape[-1] >= longest, (
                f"without a width, gather padded to {own.shape[-1]}, not the smallest of "
                f"{buckets} that holds {longest}"
            )
            np.testing.assert_array_equal(own, batch[..., : own.shape[-1]])


def check_resumable(ds: MultimodalDataset, position: int | None = None) -> None:
    """Checks that ``get_state``/``set_state`` continue the stream exactly, mid-epoch and
    across an epoch boundary, raising AssertionError on a breach."""
    position = len(ds) // 2 if position is None else position
    for i in range(position):
        ds[i]
    state = ds.get_state()
    expected = [_flat(ds[i]) for i in range(position, len(ds))]
    ds.on_epoch_end()
    expected += [_flat(ds[i]) for i in range(len(ds))]
    ds.set_state(state)
    got = [_flat(ds[i]) for i in range(state["position"], len(ds))]
    ds.on_epoch_end()
    got += [_flat(ds[i]) for i in range(len(ds))]
    assert len(got) == len(expected), "the resumed stream has another length"
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y, f"resumed batch {k} differs")


def _gather(source: Source, indices: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """A batch of ``indices``; a variable-length source padded to its declared shape."""
    buckets = source.buckets
    width = source.shape[-1] if buckets is not None and len(buckets) > 1 else None
    context = GatherContext("source", seed, epoch, width=width)
    return np.asarray(source.gather(np.asarray(indices), context))


def _flat(batch: Any) -> list[np.ndarray]:
    import keras

    return [np.asarray(a) for a in keras.tree.flatten(batch)]


# The S3-compatible server `s3_server` runs: moto's WSGI app in werkzeug's threaded server
# on 127.0.0.1 (a free port, printed once listening), each request delayed by argv[1] s.
_S3_SERVER = """
import sys, time
from werkzeug.serving import make_server
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
delay = float(sys.argv[1])
app = DomainDispatcherApplication(create_backend_app)
def delayed(environ, start_response):
    time.sleep(delay)
    return app(environ, start_response)
server = make_server("127.0.0.1", 0, delayed if delay > 0 else app, threaded=True,
                     request_handler=MotoRequestHandler)
import os, threading
try:  # Linux: a SIGTERM when the parent dies, however it dies
    import ctypes, signal
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except Exception:
    pass
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_port, flush=True)
sys.stdin.read()  # returns when the parent closes the pipe or dies
os._exit(0)
"""


@contextlib.contextmanager
def s3_server(delay_s: float = 0.0, timeout_s: float = 60.0) -> Iterator[dict[str, Any]]:
    """An S3-compatible server (moto) on 127.0.0.1 for tests and benchmarks, started as a
    subprocess and stopped on exit, or when this process dies however it dies (the
    server watches a pipe from it); yields the ``storage_options`` that reach it.

    Needs ``pip install "moto[server]" s3fs``. Each request is answered ``delay_s``
    seconds late (to measure how well a reader hides latency).

    ```python
    with testing.s3_server() as options:
        fs = fsspec.filesystem("s3", **options)
        fs.mkdir("bucket")
    ```
    """
    # The server reads its standard input, a pipe from this process, and exits when it
    # closes: when this block ends, and also when this process is killed (a test run
    # stopped with SIGKILL left servers running for hours before).
    process = subprocess.Popen(
        [sys.executable, "-c", _S3_SERVER, str(delay_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout_s)
        line = process.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            raise RuntimeError(
                f"The moto S3 server did not start within {timeout_s} s (exit code "
                f"{process.poll()}). Is moto[server] installed? pip install 'moto[server]'"
            )
        yield {
            "key": "testing",
            "secret": "testing",
            "endpoint_url": f"http://127.0.0.1:{int(line)}",
        }
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def ray_cluster(num_cpus: int = 2, object_store_mib: int = 256) -> Iterator[str]:
    """A local Ray cluster for tests and benchmarks: bound to 127.0.0.1, without the
    dashboard, its session files and authentication token in a temporary folder (Ray 2.60
    writes a token under the home folder otherwise), shut down and removed on exit.
    Its worker processes import what this process can (its ``sys.path``, as spawned
    processes do). Yields the cluster's address, for other processes
    (``ray.init(address=...)``; they need the ``RAY_AUTH_TOKEN`` this sets in the
    environment).

    Needs ``pip install "multimodal-dataset[ray]"``.

    ```python
    with testing.ray_cluster(num_cpus=2):
        ds = MultimodalDataset(..., workers=RayWorkers(num_actors=2))
    ```
    """
    import importlib
    import secrets
    import shutil
    import tempfile

    from multimodal_dataset._utils.optional import optional_import

    # Ray binds to the machine's routable address unless told it is no cluster (its switch
    # for Windows and macOS): then to 127.0.0.1, and nothing outside reaches it.
    saved_cluster = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray = optional_import("ray", "testing.ray_cluster")
    constants: Any = importlib.import_module("ray._private.ray_constants")
    enabled, constants.ENABLE_RAY_CLUSTER = constants.ENABLE_RAY_CLUSTER, False
    if ray.is_initialized():
        raise RuntimeError("Ray is initialized already: call ray.shutdown() first.")
    # Unix socket paths are limited to about 100 characters: a short folder under /tmp.
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp" if os.path.isdir("/tmp") else None)
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_TOKEN", "RAY_ADDRESS")}
    os.environ["RAY_AUTH_TOKEN"] = saved["RAY_AUTH_TOKEN"] or secrets.token_hex(32)
    os.environ.pop("RAY_ADDRESS", None)
    try:
        context = ray.init(
            address="local",
            num_cpus=num_cpus,
            object_store_memory=object_store_mib * 2**20,
            include_dashboard=False,
            _temp_dir=folder,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}},
        )
        yield str(context.address_info["gcs_address"])
    finally:
        ray.shutdown()
        constants.ENABLE_RAY_CLUSTER = enabled
        saved["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = saved_cluster
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(folder, ignore_errors=True)
