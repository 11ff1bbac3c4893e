"""Shared fixtures: the active Keras backend, small multimodal data, and a recorder of the
sample ids that reach the training step."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import keras_marks as marks

# ------------------------------------------------------- marks: where a test runs

marks.install()  # before the test modules import keras's functions
_recording = marks.Recording()
_over_marked: list[str] = []
_REPORT = os.environ.get("MARKS_REPORT")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    _recording.start()  # fixtures count: a fixture that fits a model needs the backend
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Fails a test that passed but uses a backend (or Keras) without the mark saying so."""
    try:
        result = yield
    finally:
        used = _recording.stop()
    if "backend" in getattr(item, "fixturenames", ()):
        used.setdefault(marks.BACKEND, set()).add("the backend fixture")
    names = {mark.name for mark in item.iter_markers()}
    if _REPORT is not None:  # MARKS_REPORT=file: what each test used, one JSON line each
        with open(_REPORT, "a", encoding="utf-8") as out:
            out.write(
                json.dumps({"test": item.nodeid, "used": {k: sorted(v) for k, v in used.items()}})
                + "\n"
            )
    missing = marks.missing_marks(used, names)
    if missing:
        pytest.fail(marks.explain(item.nodeid, missing), pytrace=False)
    if marks.BACKEND in names and not used.get(marks.BACKEND):
        _over_marked.append(item.nodeid)
    return result


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _over_marked:
        terminalreporter.write_line(
            f"marks: {len(_over_marked)} tests marked 'backend' used no backend in this run "
            "(fine where another parametrization or backend does; see tests/keras_marks.py)"
        )


@pytest.fixture(scope="session")
def backend() -> str:
    return keras.backend.backend()


@pytest.fixture
def arrays() -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Ten samples of (image, token ids, numbers) and labels, values tied to the sample id."""
    n = 10
    ids = np.arange(n)
    img = np.broadcast_to(ids[:, None, None, None], (n, 4, 4, 3)).astype(np.float32)
    txt = np.broadcast_to(ids[:, None], (n, 6)).astype(np.int64)
    num = np.broadcast_to(ids[:, None], (n, 2)).astype(np.float64)
    return (img, txt, num), ids.astype(np.int64)


@pytest.fixture(params=["fork", "spawn"])
def start_method(request: pytest.FixtureRequest):
    """Runs a test under each multiprocessing start method, restoring the default after."""
    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(request.param, force=True)
    yield request.param
    multiprocessing.set_start_method(previous, force=True)


WORKER_MODES = {
    "inline": {"workers": 1},
    "threads": {"workers": 3},
    "fork": {"workers": 2, "use_multiprocessing": True},
    "spawn": {"workers": 2, "use_multiprocessing": True},
}


@pytest.fixture(params=list(WORKER_MODES))
def worker_mode(request: pytest.FixtureRequest):
    """MultimodalDataset keyword arguments for each worker mode (processes under fork and
    under spawn), restoring the default start method after."""
    previous = multiprocessing.get_start_method(allow_none=True)
    if request.param in ("fork", "spawn"):
        multiprocessing.set_start_method(request.param, force=True)
    yield WORKER_MODES[request.param]
    multiprocessing.set_start_method(previous, force=True)


COLOUR = np.array([200, 100, 50], dtype=np.uint8)


def solid(height=30, width=40, colour=COLOUR):
    return np.broadcast_to(colour, (height, width, 3)).copy()


def gather(source, indices=None, **context):
    indices = np.arange(len(source)) if indices is None else np.asarray(indices)
    from multimodal_dataset import GatherContext

    return source.gather(indices, GatherContext(**context))


def write_image(path, pixels: np.ndarray, mode: str = "RGB") -> None:
    """Writes ``pixels`` (uint8, HxWxC or HxW) as an image file; the format follows the
    file's suffix and ``mode`` is the image mode stored (RGB, L, RGBA, P)."""
    from PIL import Image

    image = Image.fromarray(pixels)
    if mode == "P":
        image = image.convert("RGB").quantize(16)
    elif image.mode != mode:
        image = image.convert(mode)
    image.save(path)


@pytest.fixture
def image_files(tmp_path):
    """Twelve 20x30 RGB PNGs: red encodes the sample id, the left half is green."""
    paths = []
    for i in range(12):
        pixels = np.zeros((20, 30, 3), dtype=np.uint8)
        pixels[..., 0] = 20 * i
        pixels[:, :15, 1] = 200  # left half green: shows flips
        paths.append(tmp_path / f"{i:02d}.png")
        write_image(paths[-1], pixels)
    return paths


# ------------------------------------------------------------------------ tables

from multimodal_dataset.example import NUMERIC_COLUMNS  # noqa: E402

COLUMNS = {
    "image": "image",
    "text": "caption",
    "numeric": list(NUMERIC_COLUMNS),
    "target": "label",
    "image_size": (16, 16),
    "text_length": 8,
}


@pytest.fixture(scope="session")
def example(tmp_path_factory):
    """The example dataset (60 JPEGs, captions, numbers, labels) and its manifest."""
    from multimodal_dataset import make_example

    folder = tmp_path_factory.mktemp("example")
    return make_example(folder, samples=60, seed=1)


def read_rows(manifest):
    with open(manifest, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def write_rows(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def edited(example, row, column, value):
    """A copy of the example's manifest (same folder) with one cell changed."""
    rows = read_rows(example)
    rows[row + 1][rows[0].index(column)] = value
    return write_rows(example.parent / f"edited_{column}_{row}.csv", rows)


def all_batches(ds):
    return [ds[i] for i in range(len(ds))]


def assert_same_batches(a, b):
    import keras

    for batch_a, batch_b in zip(all_batches(a), all_batches(b), strict=True):
        for x, y in zip(keras.tree.flatten(batch_a), keras.tree.flatten(batch_b), strict=True):
            np.testing.assert_array_equal(x, y)


def numbers_table(targets, tmp_path=None, name="targets.csv"):
    """A CSV (or, without tmp_path, a DataFrame) of one numeric input and the targets."""
    rows = [["x", "y"]] + [[str(i), str(t)] for i, t in enumerate(targets)]
    if tmp_path is None:
        return pd.DataFrame({"x": np.arange(len(targets)), "y": np.asarray(targets, dtype=object)})
    return write_rows(tmp_path / name, rows)


# ------------------------------------------------------------------------ shards

N = 103


def shards(count, batch_size=5, n=N, **kwargs):
    from multimodal_dataset import MultimodalDataset

    ids = np.arange(n)
    return [
        MultimodalDataset(
            ids[:, None], ids, batch_size=batch_size, seed=7, shard=(i, count), **kwargs
        )
        for i in range(count)
    ]


def real_ids(ds):
    """The sample ids of every batch of the current epoch, without the zero-weight padding."""
    out = []
    for i in range(len(ds)):
        batch = ds[i]
        ids = batch[1]
        if ds.pad_remainder:
            ids = ids[batch[2] > 0]
        out.append(ids)
    return out


def ids_over_shards(make_train, count=3):
    """Every real sample id of one epoch of each of ``count`` process shards, concatenated;
    ``make_train(shard=(i, count), pad_remainder=True)`` builds shard i's dataset."""
    seen = []
    for shard in range(count):
        train = make_train(shard=(shard, count), pad_remainder=True)
        train.on_epoch_end()
        seen.extend(real_ids(train))
    return np.concatenate(seen)


# ------------------------------------------------------------- what fit trains on


class Recorder(keras.callbacks.Callback):
    """Collects, per epoch, the sample ids that reach the training step."""

    def __init__(self):
        super().__init__()
        self.epochs: list[list[np.ndarray]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append([])

    def record(self, ids):
        if not self.epochs:  # Keras builds the metrics symbolically before training
            return
        self.epochs[-1].append(keras.ops.convert_to_numpy(ids).astype(np.int64).ravel())


class RecordIds(keras.metrics.Metric):
    """A metric that hands the targets (the sample ids) of each trained batch to a Recorder.

    Metrics run inside the train step, after the forward pass on the batch, so what they
    see is exactly what was trained on. Needs ``run_eagerly=True`` to see concrete values.
    """

    def __init__(self, recorder, name="record_ids"):
        super().__init__(name=name)
        self.recorder = recorder

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.recorder.record(y_true)

    def result(self):
        return 0.0


# ---------------------------------------------------------------- images in tables


@pytest.fixture(autouse=True, scope="session")
def arrow_cache_folder(tmp_path_factory):
    """Parquet image columns are converted into a temporary cache, not the user's."""
    import os

    folder = tmp_path_factory.mktemp("arrow_cache")
    previous = os.environ.get("MULTIMODAL_DATASET_CACHE")
    os.environ["MULTIMODAL_DATASET_CACHE"] = str(folder)
    yield folder / "arrow"
    if previous is None:
        os.environ.pop("MULTIMODAL_DATASET_CACHE", None)
    else:
        os.environ["MULTIMODAL_DATASET_CACHE"] = previous


@pytest.fixture(scope="session")
def parquet_example(tmp_path_factory):
    """The `example` dataset's samples, as Parquet shards with the JPEG bytes inside."""
    from multimodal_dataset import make_example

    folder = tmp_path_factory.mktemp("parquet_example")
    return make_example(folder, samples=60, seed=1, format="parquet")


def id_png(i: int) -> bytes:
    """A 6x5 PNG whose every pixel is ``i % 256``: decoded at any size, it reads back ``i``."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.full((6, 5, 3), i % 256, dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def id_table(ids, *, struct=True):
    """A pyarrow table of ``ids``: ``image`` (``{bytes, path}`` or binary) whose pixels are
    the id, ``id``, ``label`` (the id again: a target, since a column is one input or
    target) and a ``caption`` naming it."""
    import pyarrow as pa

    ids = [int(i) for i in ids]
    if struct:
        image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        images = pa.array([{"bytes": id_png(i), "path": f"{i}.png"} for i in ids], image_type)
    else:
        images = pa.array([id_png(i) for i in ids], pa.binary())
    return pa.table(
        {
            "image": images,
            "id": pa.array(ids, pa.int64()),
            "label": pa.array(ids, pa.int64()),
            "caption": [f"item {i}" for i in ids],
        }
    )


ID_COLUMNS = {"image": "image", "numeric": ["id"], "image_size": (2, 2)}


def ids_of(batch):
    """The sample ids in a batch of an `id_table` dataset: its image pixels."""
    x = batch[0]
    images = x[0] if isinstance(x, tuple) else x
    return np.round(np.asarray(images)[:, 0, 0, 0] * 255).astype(int)


# ---------------------------------------------------------------- WebDataset shards


def write_shards(folder, ids, shards=3, image="png", json_fields=True, **extra):
    """WebDataset shards of ``ids`` written with the webdataset library's own TarWriter:
    ``<key>.png`` (pixels = id), ``.txt``, ``.cls`` (the id) and ``.json`` ({"id", "half"})."""
    import webdataset

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, part in enumerate(np.array_split(np.asarray(ids), shards)):
        paths.append(folder / f"{k:05d}.tar")
        with webdataset.TarWriter(str(paths[-1])) as writer:
            for i in part:
                sample = {
                    "__key__": f"sample{int(i):06d}",
                    image: id_png(int(i)),
                    "txt": f"item {int(i)}",
                    "cls": int(i),
                }
                if json_fields:
                    sample["json"] = {"id": int(i), "half": {"value": int(i) / 2}}
                writer.write({**sample, **extra})
    return paths


# ---------------------------------------------------------------- remote storage


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster on 127.0.0.1 (4 logical CPUs) for the tests marked ``ray``;
    they share one per test process (``xdist_group("ray")`` keeps them in one)."""
    from multimodal_dataset import testing

    with testing.ray_cluster(num_cpus=4) as address:
        yield address


@pytest.fixture(scope="session")
def s3():
    """A moto S3 server on 127.0.0.1 for the whole session (a subprocess, stopped at the
    end), with the bucket ``data``; the fsspec file system and the storage_options."""
    import fsspec

    from multimodal_dataset import testing

    with testing.s3_server() as options:
        fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
        fs.mkdir("data")
        yield fs, options


def upload(s3, local, url):
    """Copies the file or folder ``local`` to ``url`` on the test S3 server."""
    import os

    fs, _ = s3
    if os.path.isdir(local):
        for path in sorted(Path(local).rglob("*")):
            if path.is_file():
                fs.pipe_file(f"{url}/{path.relative_to(local).as_posix()}", path.read_bytes())
    else:
        fs.pipe_file(url, Path(local).read_bytes())
    return url
