"""Shared fixtures: the active Keras backend, small multimodal data, and a recorder of the
sample ids that reach the training step."""

from __future__ import annotations

import multiprocessing

import keras
import numpy as np
import pytest


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
