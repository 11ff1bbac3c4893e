"""What every benchmark shares: the data (generated once, cached on disk), the timing
rule (rounds in which every loader runs once, back to back, after a warm-up; each rate
kept per round so that a ratio can be computed round by round), and a description of the
machine."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = ROOT / ".data"  # generated inputs, reused between runs and sessions (git-ignored)

IMAGE_SHAPE = (64, 64, 3)
TEXT_LENGTH = 100
NUMERIC_FEATURES = 5


@dataclasses.dataclass
class Settings:
    """Sizes of one run: the full run for people, ``quick`` for CI's smoke test.

    ``repetitions`` is the number of rounds of the loaders timed per epoch (each round one
    epoch of every loader); ``rounds`` the number of rounds of the groups that train a
    model (each round one ``fit`` per feed). Every ratio is computed per round, so a full
    run gives at least 5 per ratio.
    """

    quick: bool
    samples: int
    repetitions: int
    image_files: int
    memmap_bytes: int
    fit_epochs: int
    rounds: int

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(True, 512, 2, 64, 64 * 2**20, 1, 1)
        return cls(False, 8192, 7, 2000, 2 * 2**30, 2, 5)


@dataclasses.dataclass
class Measurement:
    """Samples per second of one loader: the median of the rounds, the range, and each
    round's rate in round order (``rounds[i]`` ran back to back with every other loader's
    ``rounds[i]`` of the same group and backend, so ratios pair them)."""

    name: str
    backend: str
    batch_size: int
    samples_per_s: float
    min: float
    max: float
    repetitions: int
    group: str
    note: str = ""
    #: Group-specific figures besides the rate (e.g. the text group's padding fraction).
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    rounds: list[float] = dataclasses.field(default_factory=list)


def measure(
    loaders: dict[str, Callable[[], int]],
    group: str,
    backend: str,
    batch_size: int,
    repetitions: int,
    note: str = "",
) -> list[Measurement]:
    """Times each loader's ``epoch()`` (which returns the samples it produced).

    Every loader runs one warm-up epoch, then the loaders take turns, one epoch each, for
    ``repetitions`` rounds: drift in the machine's state (page cache, allocator, other
    load) then affects every loader alike instead of whichever ran last. Reports the
    median samples/s and the range.
    """
    for epoch in loaders.values():
        epoch()
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(repetitions):
        for name, epoch in loaders.items():
            gc.collect()
            start = time.perf_counter()
            count = epoch()
            rates[name].append(count / (time.perf_counter() - start))
    return [
        summarize(name, group, backend, batch_size, values, note) for name, values in rates.items()
    ]


def summarize(
    name: str, group: str, backend: str, batch_size: int, rates: list[float], note: str = ""
) -> Measurement:
    """The median and range of ``rates`` (samples/s of each round, in order), printed."""
    result = Measurement(
        name,
        backend,
        batch_size,
        statistics.median(rates),
        min(rates),
        max(rates),
        len(rates),
        group,
        note,
        rounds=[round(r, 2) for r in rates],
    )
    report(result)
    return result


def report(result: Measurement) -> None:
    print(
        f"  {result.group:9} {result.name:44} bs={result.batch_size:<4} "
        f"{result.samples_per_s:>10,.0f} samples/s (min {result.min:,.0f}, max {result.max:,.0f})",
        flush=True,
    )


def arrays(samples: int, seed: int = 0) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """``((img, txt, num), y)``: float32 images, int32 token ids, float32 numbers, labels."""
    rng = np.random.default_rng(seed)
    img = rng.random((samples, *IMAGE_SHAPE), dtype=np.float32)
    txt = rng.integers(1, 1000, (samples, TEXT_LENGTH), dtype=np.int32)
    num = rng.standard_normal((samples, NUMERIC_FEATURES), dtype=np.float32)
    y = rng.integers(0, 2, samples, dtype=np.int32)
    return (img, txt, num), y


def npy_files(samples: int) -> list[Path]:
    """The same arrays as ``arrays(samples)`` saved as .npy files (written once)."""
    folder = DATA / f"arrays_{samples}"
    names = ["img", "txt", "num", "y"]
    paths = [folder / f"{n}.npy" for n in names]
    if not all(p.exists() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        (img, txt, num), y = arrays(samples)
        for path, array in zip(paths, (img, txt, num, y), strict=True):
            np.save(path, array)
    return paths


def jpeg_folder(count: int, size: int = 256) -> Path:
    """``count`` photo-like ``size`` x ``size`` JPEGs in two class folders (written once)."""
    from PIL import Image

    folder = DATA / f"jpegs_{count}_{size}"
    done = folder / ".complete"
    if done.exists():
        return folder
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        a, b, c = rng.uniform(0.5, 6, 3)
        pixels = np.stack([np.sin(a * x + b * y), np.cos(b * x - c * y), np.sin(c * x * y)], -1)
        pixels = (pixels + 1) * 110 + rng.normal(0, 12, (size, size, 3))
        cls = folder / f"class_{i % 2}"
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(cls / f"{i:05d}.jpg", quality=90)
    done.touch()
    return folder


def machine() -> dict[str, Any]:
    """CPU model, core count, memory, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    memory_gib = None
    with contextlib.suppress(ValueError, OSError):
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    libraries = {}
    for name in (
        "multimodal-dataset",
        "keras",
        "numpy",
        "tensorflow-cpu",
        "tensorflow",
        "jax",
        "torch",
        "grain",
        "pillow",
        "simplejpeg",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            libraries[name] = metadata.version(name)
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": libraries,
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def in_fresh_process(
    module: str, function: str, *args: object, python: str | None = None, backend: str = ""
) -> Any:
    """``benchmarks.<module>.<function>(*args)`` (string arguments) run in a fresh Python
    process (``python``, by default this one; with ``KERAS_BACKEND=backend`` if given),
    so that nothing an earlier benchmark imported or allocated counts; returns the JSON it
    prints."""
    import os
    import subprocess
    import sys

    code = (
        f"import json, sys; from benchmarks import {module}; "
        f"print(json.dumps({module}.{function}(*sys.argv[1:])))"
    )
    output = subprocess.run(
        [python or sys.executable, "-c", code, *map(str, args)],
        env={**os.environ, "KERAS_BACKEND": backend} if backend else None,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT.parent,  # the repository: `benchmarks` imports
    ).stdout
    return json.loads(output.strip().splitlines()[-1])
