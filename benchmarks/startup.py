"""Worker start-up: the time to the first batch of an epoch with 2 spawned worker
processes (the pool starts with the epoch), and each worker's RSS once it has gathered.

A spawned worker unpickles the dataset's sources, which imports their modules. The
package imports its public names on first use, so a worker imports what gathering needs
(numpy, PIL, the sources) and not Keras or a backend. "eager" is the same dataset whose
workers also import every public name of the package, as its ``__init__`` did before
(Keras, the backend, pandas, pyarrow): the cost that design put on every worker.
Measured in a fresh process per backend (the backend decides what Keras imports).
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, Settings, in_fresh_process
from multimodal_dataset.sources.protocol import Source

WORKERS = 2
BATCH_SIZE = 32


class Imports(Source):
    """A one-column source of zeros whose unpickling in a worker imports every public
    name of the package when ``eager`` (what the eager ``__init__`` did)."""

    def __init__(self, n: int, eager: bool):
        self.n, self.eager = n, eager

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.eager:
            import multimodal_dataset

            for name in multimodal_dataset.__all__:
                getattr(multimodal_dataset, name)

    @property
    def shape(self):
        return (self.n, 1)

    @property
    def dtype(self):
        return np.dtype("float32")

    def gather(self, indices, context):
        return np.zeros((len(indices), 1), np.float32)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(manifest: str, rounds: int | str) -> dict:
    """Fresh datasets of the example's JPEG files and numbers: per variant, the seconds to
    the first batch (median and range over ``rounds``) and each worker's RSS after it."""
    import csv

    from multimodal_dataset import ImageFiles, MultimodalDataset
    from multimodal_dataset.example import NUMERIC_COLUMNS

    rounds = int(rounds)
    multiprocessing.set_start_method("spawn", force=True)
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    images = ImageFiles([r["image"] for r in rows], (64, 64), root=Path(manifest).parent)
    numbers = np.array([[float(r[c]) for c in NUMERIC_COLUMNS] for r in rows], np.float32)
    labels = np.array([int(r["label"]) for r in rows])
    out: dict = {}
    for variant in ("lazy", "eager"):
        seconds, rss = [], []
        for _ in range(rounds):
            ds = MultimodalDataset(
                (images, numbers, Imports(len(rows), eager=variant == "eager")),
                labels,
                batch_size=BATCH_SIZE,
                seed=0,
                workers=WORKERS,
                use_multiprocessing=True,
            )
            start = time.perf_counter()
            ds[0]
            seconds.append(time.perf_counter() - start)
            rss += [_rss_mib(p.pid) for p in multiprocessing.active_children()]
            ds._gatherer.close()  # the next round starts its own pool
        out[variant] = {
            "first_batch_s": round(statistics.median(seconds), 3),
            "first_batch_min_s": round(min(seconds), 3),
            "first_batch_max_s": round(max(seconds), 3),
            "worker_rss_mib": round(statistics.median(rss), 1),
            "rounds": rounds,
        }
    return out


def run(backend: str, settings: Settings) -> dict:
    from multimodal_dataset import make_example

    folder = DATA / "startup_example"
    done = folder / "manifest.path"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        done.write_text(str(make_example(folder, samples=256, seed=0)))
    manifest = done.read_text()
    result = in_fresh_process("startup", "measure", manifest, 1 if settings.quick else 5)
    lazy, eager = result["lazy"], result["eager"]
    print(
        f"  startup   {WORKERS} spawned workers, first batch: {lazy['first_batch_s']:.2f} s "
        f"(eager imports: {eager['first_batch_s']:.2f} s); worker RSS "
        f"{lazy['worker_rss_mib']:.0f} MiB (eager: {eager['worker_rss_mib']:.0f} MiB)",
        flush=True,
    )
    return {"backend": backend, "workers": WORKERS, "batch_size": BATCH_SIZE, **result}
