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


def upload(shards: list[str], options: dict) -> list[str]:
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
    fs.mkdir("bench")
    urls = []
    for shard in shards:
        urls.append(f"s3://bench/shards/{Path(shard).name}")
        fs.pipe_file(urls[-1], Path(shard).read_bytes())
    return urls


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
        return measure(loaders, "remote", backend, BATCH_SIZE, settings.repetitions, note)
