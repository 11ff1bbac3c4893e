"""Scale: what an epoch's bookkeeping costs as the sample count N grows, with growth
exponents fitted across N (the slope of log cost against log N: 0 is flat, 1 linear).

- **order**: the first batch of a new epoch (a fresh dataset over N samples: the order's
  set-up is paid there) and the mean cost of the next batches, with the peak memory
  Python allocates for them (tracemalloc), at N up to 1e9. The arrays are a zero-stride
  view (no data), so only the order and the gather of 256 indices are measured.
- **grouped**: the same for captions padded per step to bucket boundaries and grouped by
  length (`group_by_length=True`), through the dataset's `Sampler` with each sample's
  length a hash of its index (no array of N lengths), at N up to 1e9.
- **construction** (`benchmarks.construction`): `from_table` over Parquet tables of N
  rows and fitting the text alone, each in a fresh process, with the peers.
- **flagged**: the cost per batch of finding the bad samples among a batch's indices in a
  precomputed source with 1% of N bad (`on_error="replace"`), at N up to 1e7.

Targets (the issue's): per-step cost and the first batch of an epoch flat in N (exponent
at most 0.1). The per-step figure is the mean of many batches, so it is steady; the first
batch is one measurement per N (the median of 3 fresh datasets).
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from typing import Any

import numpy as np

from benchmarks import construction
from benchmarks.common import Settings

BATCH_SIZE = 256


def sizes(settings: Settings, largest: int) -> list[int]:
    top = 10**5 if settings.quick else largest
    return [n for n in (10**4, 10**5, 10**6, 10**7, 10**8, 10**9) if n <= top]


def exponent(ns: list[int], costs: list[float]) -> float:
    """The least-squares slope of log(cost) against log(N)."""
    slope = np.polyfit(np.log(ns), np.log(costs), 1)[0]
    return round(float(slope), 3)


def no_data(n: int) -> np.ndarray:
    """N samples of one float each, all the same memory: a view with stride 0."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (n, 1), (0, 0))


def timed(n: int, steps: int, fresh: Any, read: Any, count: Any) -> dict:
    """The first read of a fresh epoch (median of 3 fresh ``fresh(seed)``), the mean of
    the next ``steps`` reads, and the memory Python allocates for a new epoch's first
    20 reads (traced apart: tracing slows every allocation)."""
    firsts = []
    for _ in range(3):
        epoch = fresh(0)
        start = time.perf_counter()
        read(epoch, 0)
        firsts.append(time.perf_counter() - start)
    steps = min(steps, count(epoch) - 1)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        read(epoch, i)
    step = (time.perf_counter() - start) / steps
    epoch = fresh(1)
    tracemalloc.start()
    for i in range(min(20, count(epoch))):
        read(epoch, i)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "n": n,
        "first_batch_ms": round(statistics.median(firsts) * 1e3, 3),
        "step_us": round(step * 1e6, 2),
        "peak_mib": round(peak / 2**20, 2),
    }


def order_at(n: int, steps: int) -> dict:
    from multimodal_dataset import MultimodalDataset

    def fresh(seed: int) -> Any:
        return MultimodalDataset(no_data(n), batch_size=BATCH_SIZE, seed=seed, shuffle=True)

    return timed(n, steps, fresh, lambda ds, i: ds[i], len)


BUCKETS = (16, 32, 64, 128)


class HashedLengths:
    """N caption lengths without an array: 8 to 128 tokens, a hash of the index."""

    def __init__(self, n: int, ranks: bool = False) -> None:
        self.n, self.ranks = n, ranks

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        mixed = (np.asarray(index, np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(44)
        lengths = 8 + (mixed % np.uint64(121)).astype(np.int64)
        return np.searchsorted(BUCKETS, lengths).astype(np.uint8) if self.ranks else lengths

    def min(self) -> int:
        return 8

    def max(self) -> int:
        return 128


def grouped_at(n: int, steps: int) -> dict:
    from multimodal_dataset.batching.padding import Padding
    from multimodal_dataset.batching.sampler import Sampler

    def sampler(seed: int) -> Sampler:
        padding = Padding([(BUCKETS, HashedLengths(n))])
        ranks = HashedLengths(n, ranks=True)
        return Sampler(n, BATCH_SIZE, True, seed, False, padding=padding, group_ranks=ranks)

    return timed(n, steps, sampler, lambda s, i: s.plan(0, i), lambda s: s.num_batches)


def flagged_at(n: int, steps: int) -> dict:
    from multimodal_dataset.sources.protocol import GatherContext, PrecomputedSource

    rng = np.random.default_rng(0)
    bad = rng.choice(n, max(1, n // 100), replace=False)
    source = PrecomputedSource(
        np.zeros(n, np.int8), dict.fromkeys(bad.tolist(), "bad"), "replace", None, None
    )
    batches = rng.integers(0, n, size=(steps, BATCH_SIZE))
    start = time.perf_counter()
    for indices in batches:
        source.report_bad(indices, GatherContext())
    return {"n": n, "step_us": round((time.perf_counter() - start) / steps * 1e6, 2)}


def run(settings: Settings) -> dict:
    steps = 50 if settings.quick else 400
    order = [order_at(n, steps) for n in sizes(settings, 10**9)]
    grouped = [grouped_at(n, steps) for n in sizes(settings, 10**9)]
    built = construction.run(settings)
    flagged = [flagged_at(n, steps) for n in sizes(settings, 10**7)]
    ns = [row["n"] for row in order]
    result = {
        "batch_size": BATCH_SIZE,
        "order": order,
        "grouped": grouped,
        "flagged": flagged,
        "construction": built,
        "grouped_first_batch_exponent": exponent(ns, [r["first_batch_ms"] for r in grouped]),
        "grouped_step_exponent": exponent(ns, [r["step_us"] for r in grouped]),
        "order_first_batch_exponent": exponent(ns, [r["first_batch_ms"] for r in order]),
        "order_step_exponent": exponent(ns, [r["step_us"] for r in order]),
        "flagged_step_exponent": exponent(
            [r["n"] for r in flagged], [r["step_us"] for r in flagged]
        ),
    }
    for row in order:
        print(
            f"  scale     order N={row['n']:.0e}: first batch {row['first_batch_ms']:.2f} ms, "
            f"then {row['step_us']:.1f} us/batch, peak {row['peak_mib']:.1f} MiB",
            flush=True,
        )
    for row in grouped:
        print(
            f"  scale     grouped N={row['n']:.0e}: first batch {row['first_batch_ms']:.2f} ms, "
            f"then {row['step_us']:.1f} us/batch, peak {row['peak_mib']:.1f} MiB",
            flush=True,
        )
    for row in flagged:
        print(f"  scale     1% flagged N={row['n']:.0e}: {row['step_us']:.1f} us/batch", flush=True)
    print(
        f"  scale     growth exponents: first batch {result['order_first_batch_exponent']}, "
        f"step {result['order_step_exponent']}, grouped first batch "
        f"{result['grouped_first_batch_exponent']}, grouped step "
        f"{result['grouped_step_exponent']}, flagged step {result['flagged_step_exponent']}",
        flush=True,
    )
    return result


def main() -> None:
    """``python -m benchmarks.scale [--quick]``: the scale group alone (no backend), its
    results written to ``benchmarks/results/scale.{json,md}``, which the performance
    page includes."""
    import argparse

    from benchmarks.common import ROOT, machine, write_json
    from benchmarks.report import scale_table

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="the smoke run's sizes")
    args = parser.parse_args()
    result = {"machine": machine(), **run(Settings.make(args.quick))}
    folder = ROOT / "results" / ("quick" if args.quick else "")
    write_json(folder / "scale.json", result)
    lines = ["# Scale: the bookkeeping and construction against the number of samples", ""]
    box = result["machine"]
    lines += [
        f"Measured with `python -m benchmarks.scale` on {box['cpu']}, {box['cores']} cores, "
        f"{box['memory_gib']} GiB, Python {box['python']}.",
        *scale_table(result),
    ]
    (folder / "scale.md").write_text("\n".join(lines) + "\n")
    print(f"Wrote {folder / 'scale.md'}")


if __name__ == "__main__":
    main()
