"""Remote storage: the shard benchmark's tar shards on a local S3-compatible server (moto,
started as a subprocess on 127.0.0.1), read by `from_webdataset` through s3fs, with every
request answered 20 ms late against the same server without delay. How much of the
latency a batch's concurrent requests hide: the target is 70% of the no-delay rate.

The server, not the network, bounds both rates here (moto serves a few hundred requests
a second on this machine); against real object storage the no-delay rate is higher and
the delay a larger share of each request.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from benchmarks.common import Measurement, Settings, jpeg_folder, measure
from benchmarks.images import BATCH_SIZE
from benchmarks.shards import ours, shards_of

DELAY_S = 0.02
NO_DELAY = "from_webdataset: S3 shards (local server)"
DELAYED = "from_webdataset: S3 shards, 20 ms per request"
#: A source that waits once per batch (a database or API call), and how long.
WAIT_S = 0.05
WAITS_PREFETCH_1 = "per-batch wait: MultimodalDataset(prefetch=1)"
WAITS_PREFETCH_4 = "per-batch wait: MultimodalDataset(prefetch=4)"
WAITS_KERAS_POOL = "per-batch wait: hand-written PyDataset, Keras pool workers=4"


def upload(shards: list[str], options: dict) -> list[str]:
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
    fs.mkdir("bench")
    urls = []
    for shard in shards:
        urls.append(f"s3://bench/shards/{Path(shard).name}")
        fs.pipe_file(urls[-1], Path(shard).read_bytes())
    return urls


def waits(settings: Settings) -> list[Measurement]:
    """Batches from a source that waits ``WAIT_S`` once per batch: with ``prefetch=k`` up
    to ``k`` waits overlap (the target: prefetch=4 at least 2x prefetch=1), against a
    hand-written PyDataset in Keras's own pool of 4 threads."""
    import time

    import keras
    import numpy as np

    from multimodal_dataset import MultimodalDataset
    from multimodal_dataset.sources.protocol import Source

    batches, batch = (20, 8) if settings.quick else (60, 32)
    count = batches * batch

    class Waits(Source):
        @property
        def shape(self) -> tuple[int, ...]:
            return (count, 4)

        @property
        def dtype(self) -> np.dtype:
            return np.dtype("float32")

        def gather(self, indices, context):
            time.sleep(WAIT_S)
            return np.ones((len(indices), 4), "float32")

    def ours(prefetch: int):
        ds = MultimodalDataset(
            Waits(), np.zeros(count, "float32"), batch_size=batch, seed=0, prefetch=prefetch
        )

        def epoch() -> int:
            ds.on_epoch_begin()
            served = sum(len(ds[i][1]) for i in range(len(ds)))
            ds.on_epoch_end()
            return served

        return epoch

    class HandWritten(keras.utils.PyDataset):
        def __len__(self) -> int:
            return batches

        def __getitem__(self, i):
            time.sleep(WAIT_S)
            return np.ones((batch, 4), "float32"), np.zeros(batch, "float32")

    def keras_pool():
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        adapter = PyDatasetAdapter(HandWritten(workers=4))

        def epoch() -> int:
            adapter.on_epoch_begin()
            served = sum(len(b[1]) for b in adapter.get_numpy_iterator())
            adapter.on_epoch_end()
            return served

        return epoch

    loaders = {WAITS_PREFETCH_1: ours(1), WAITS_PREFETCH_4: ours(4), WAITS_KERAS_POOL: keras_pool()}
    note = f"{batches} batches of {batch}, {WAIT_S * 1000:.0f} ms waited once per batch"
    return measure(loaders, "waits", "any", batch, settings.repetitions, note)


def run(backend: str, settings: Settings) -> list[Measurement]:
    from multimodal_dataset import testing

    shards = shards_of(jpeg_folder(settings.image_files))
    with contextlib.ExitStack() as stack:
        loaders = {}
        for name, delay in ((NO_DELAY, 0.0), (DELAYED, DELAY_S)):
            options = stack.enter_context(testing.s3_server(delay_s=delay))
            loaders[name] = ours(upload(shards, options), options)
        note = (
            f"{settings.image_files} JPEGs 256x256 in tar shards on a moto S3 server -> 64x64, "
            "one batch at a time (no prefetching workers)"
        )
        measured = measure(loaders, "remote", backend, BATCH_SIZE, settings.repetitions, note)
    for m in waits(settings):
        m.backend = backend
        measured.append(m)
    return measured
