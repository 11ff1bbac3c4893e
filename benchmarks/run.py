"""Runs the benchmarks for the active backend and writes ``results/parts/<backend>.json``.

Usage (nox does this in one venv per backend): ``python -m benchmarks --backend jax
[--quick]``; then ``python -m benchmarks.report [--quick]`` merges the parts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from benchmarks import (
    assembly,
    fit,
    images,
    memory,
    pipeline,
    ray_pool,
    remote,
    scale,
    shards,
    startup,
    tables,
    text,
)
from benchmarks.common import ROOT, Settings, machine, write_json

GROUPS = (
    "assembly",
    "images",
    "tables",
    "shards",
    "remote",
    "fit",
    "text",
    "pipeline",
    "ray",
    "memory",
    "scale",
    "startup",
)


# The groups that measure rates, in the order they run.
RATES = {
    "assembly": assembly,
    "images": images,
    "tables": tables,
    "shards": shards,
    "remote": remote,
    "fit": fit,
    "text": text,
    "pipeline": pipeline,
    "ray": ray_pool,
}
#: Rate groups whose figures do not depend on the backend (batches stay numpy, no model):
#: the smoke run (``--quick``) measures them once, in the JAX venv, as the memory group
#: always is; a full run measures them on every backend.
BACKEND_FREE = {"remote"}
#: Groups that need what only the JAX venv installs (Ray): measured there, in every run.
JAX_ONLY = {"ray"}


def results_dir(quick: bool) -> Path:
    return ROOT / "results" / ("quick" if quick else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", required=True, choices=["tensorflow", "jax", "torch"])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups")
    args = parser.parse_args()
    import keras

    if keras.backend.backend() != args.backend:
        parser.error(f"KERAS_BACKEND is {keras.backend.backend()!r}, not {args.backend!r}")
    settings = Settings.make(args.quick)
    only = set(args.only.split(","))
    print(f"Benchmarks on {args.backend} ({'quick' if args.quick else 'full'} run)", flush=True)
    start = time.perf_counter()
    measurements = []
    seconds: dict[str, float] = {}
    for name, group in RATES.items():
        once = settings.quick and name in BACKEND_FREE and args.backend != "jax"
        elsewhere = name in JAX_ONLY and args.backend != "jax"
        if name in only and not once and not elsewhere:
            began = time.perf_counter()
            measurements += group.run(args.backend, settings)
            seconds[name] = round(time.perf_counter() - began, 1)
    part = {
        "backend": args.backend,
        "machine": machine(),
        "settings": dataclasses.asdict(settings),
        "measurements": [dataclasses.asdict(m) for m in measurements],
    }
    # Memory does not depend on the backend: measured once, in the JAX session.
    if "memory" in only and args.backend == "jax":
        began = time.perf_counter()
        part["memory"] = memory.run(settings)
        seconds["memory"] = round(time.perf_counter() - began, 1)
    # The bookkeeping's growth with the sample count: no backend either, once.
    if "scale" in only and args.backend == "jax":
        began = time.perf_counter()
        part["scale"] = scale.run(settings)
        seconds["scale"] = round(time.perf_counter() - began, 1)
    # Spawned workers' start-up: per backend (what Keras imports depends on it); the smoke
    # run proves the harness once, in the JAX session (CI waits for the slowest backend).
    if "startup" in only and not (settings.quick and args.backend != "jax"):
        began = time.perf_counter()
        part["startup"] = startup.run(args.backend, settings)
        seconds["startup"] = round(time.perf_counter() - began, 1)
    part["group_seconds"] = seconds
    part["seconds"] = round(time.perf_counter() - start, 1)
    write_json(results_dir(args.quick) / "parts" / f"{args.backend}.json", part)
    groups = ", ".join(f"{name} {s:g} s" for name, s in seconds.items())
    print(f"Done in {part['seconds']} s ({groups}; pid {os.getpid()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
