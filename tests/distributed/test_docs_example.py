"""The distributed guide's example runs as written on four JAX CPU devices (a process of
its own: the device count is fixed when JAX starts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Trains in a subprocess, where conftest's guard cannot see it: marked by hand.
pytestmark = pytest.mark.backend

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "guides" / "distributed.md"


def test_the_distributed_guide_trains_data_parallel_on_four_devices(tmp_path):
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
    )
    command = [sys.executable, str(ROOT / "tests" / "docs_examples.py"), str(PAGE)]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "(0, 1)" in done.stdout  # print(ds.shard): one process reads every shard
    assert "Epoch 2/2" in done.stdout
