"""On an accelerator: does producing the next batches during the step help? 10 epochs of
the reference model from 2,000 JPEG files (the `pipeline` group's data), prefetch=0
against the default, without and with a filled cache. ``python -m benchmarks.prefetch_gpu``
with KERAS_BACKEND set; prints one line per configuration and round."""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import keras

from benchmarks.fit import EpochTimes
from benchmarks.pipeline import BATCH_SIZE, datasets, manifest, model


def main() -> None:
    table = manifest(int(os.environ.get("IMAGES", "2000")))
    epochs = int(os.environ.get("EPOCHS", "10"))
    cache = tempfile.mkdtemp()
    filled = datasets(table, cache)
    filled.fill_cache(workers=1)
    print(f"Keras {keras.__version__} on {keras.backend.backend()}", flush=True)
    results: dict[str, list[float]] = {}
    for _ in range(3):
        for use_cache in [False, True][: 1 if os.environ.get("UNCACHED_ONLY") else 2]:
            for prefetch in (0, 2):
                name = f"cache={use_cache!s:5} prefetch={prefetch}"
                ds = datasets(table, cache if use_cache else None)
                ds = type(ds)(
                    ds.layout.inputs.pack([f.array for f in ds.layout.inputs.fields]),
                    ds.layout.targets.fields[0].array,
                    preprocessing=ds.preprocessing,
                    batch_size=BATCH_SIZE,
                    seed=0,
                    prefetch=prefetch,
                    workers=int(os.environ.get("WORKERS", "1")),
                    use_multiprocessing=bool(os.environ.get("PROCESSES")),
                )
                times = EpochTimes()
                start = time.perf_counter()
                model(len(ds.preprocessing.vocabulary)).fit(
                    ds, epochs=epochs, verbose=0, callbacks=[times, ds.monitor(verbose=False)]
                )
                total = time.perf_counter() - start
                later = statistics.median(times.seconds[1:])
                wait = statistics.median(s["wait_fraction"] for s in ds.stats[1:])
                results.setdefault(name, []).append(later)
                print(
                    f"{name}: {epochs} epochs {total:.2f} s, later epochs {later:.3f} s "
                    f"({ds.num_samples / later:,.0f} samples/s), waiting {wait:.0%}",
                    flush=True,
                )
    for name, values in results.items():
        print(f"median later epoch {name}: {statistics.median(values):.3f} s ({values})")


if __name__ == "__main__":
    main()
