"""Ray actors as workers: ``from_table`` over the JPEGs of a Parquet file (2,000 in a full
run), 64x64 batches of 32, produced by ``RayWorkers(num_actors=k)`` on a local Ray
cluster against the dataset's own ``k`` worker processes (the same cores): the cost of
Ray's object store and scheduling. Also the first-batch latency of a new epoch (actors and
processes warm), which every epoch pays once.

``k`` is this machine's core count, or the list in ``MULTIMODAL_DATASET_RAY_ACTORS``
(``1,4,12`` on a 16-core machine). Ray is installed in the JAX venv only (the actors'
work does not depend on the backend), so this group runs there.
"""

from __future__ import annotations

import os
import statistics
import time

from benchmarks.assembly import pydataset_epoch
from benchmarks.common import Measurement, Settings, jpeg_folder, measure
from benchmarks.tables import parquet_dataset, parquet_of

BATCH_SIZE = 32  # benchmarks.tables's


def actor_counts() -> list[int]:
    given = os.environ.get("MULTIMODAL_DATASET_RAY_ACTORS")
    if given:
        return [int(k) for k in given.split(",")]
    return [max(1, os.cpu_count() or 1)]


def table_dataset(path: str, workers):
    """``from_table`` over ``path`` with ``workers`` (a process count or `RayWorkers`),
    one core per worker and one batch in flight per worker."""
    if isinstance(workers, int):
        return parquet_dataset(
            path, workers=workers, use_multiprocessing=True, threads_per_worker=1, prefetch=workers
        )
    return parquet_dataset(path, workers=workers, threads_per_worker=1)


def first_batch_ms(ds, rounds: int) -> float:
    """The median milliseconds to the first batch of a new epoch (nothing prefetched)."""
    state = ds.get_state()
    seconds = []
    for r in range(rounds):
        ds.set_state(dict(state, epoch=state["epoch"] + r + 1, position=0))
        start = time.perf_counter()
        ds[0]
        seconds.append(time.perf_counter() - start)
    return round(1000 * statistics.median(seconds), 1)


def run(backend: str, settings: Settings) -> list[Measurement]:
    from multimodal_dataset import testing
    from multimodal_dataset.ray import RayWorkers

    path, _ = parquet_of(jpeg_folder(settings.image_files))
    counts = actor_counts()
    measurements: list[Measurement] = []
    with testing.ray_cluster(num_cpus=max(counts), object_store_mib=512):
        for k in counts:
            datasets = {
                f"process workers ({k})": table_dataset(path, k),
                f"RayWorkers ({k} actors)": table_dataset(path, RayWorkers(num_actors=k)),
            }
            loaders = {name: pydataset_epoch(ds) for name, ds in datasets.items()}
            found = measure(loaders, "ray", backend, BATCH_SIZE, settings.repetitions)
            for m in found:
                ds = datasets[m.name]
                m.details["first_batch_ms"] = first_batch_ms(ds, 3 if settings.quick else 7)
                first = m.details["first_batch_ms"]
                m.note = f"{k} cores; a new epoch's first batch {first} ms"
                print(f"  ray       {m.name}: first batch of an epoch {first} ms")
                ds.close()
            measurements += found
    return measurements
