"""What the portability check runs and what it requires: backends, loaders, tolerances."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
BACKENDS = ("tensorflow", "jax", "torch")
LOADERS = (*BACKENDS, "numpy")
TOLERANCE = 1e-5  # max |prediction difference| allowed, float32
MIN_LEAD = 0.15  # validation accuracy must beat chance by this much


def settings(quick: bool) -> dict:
    if quick:
        return {"samples": 1600, "epochs": 3, "folder": ROOT / "quick"}
    return {"samples": 4000, "epochs": 6, "folder": ROOT}
