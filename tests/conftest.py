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
