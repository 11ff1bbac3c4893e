"""Two PyTorch processes (gloo, CPU) train one model through Keras: keras-nightly wraps it
in DDP under DataParallel, each sample is read once per epoch by one process and both
end with the same weights. (Older Keras has no torch distribution: the dataset refuses to
train each process on its own, tests/batching/test_distribution.py.)"""

from __future__ import annotations

import json
import os

import pytest
from test_distributed import EPOCHS, SAMPLES, free_port, run_workers

# Trains in subprocesses, where conftest's guard cannot see it: marked by hand. The torch
# session runs this file (nox); the JAX sessions leave it out (-m "not torch_processes").
pytestmark = [pytest.mark.backend, pytest.mark.torch_processes]

#: Where keras-nightly is installed for these tests on the torch session (a --target
#: folder, put first on the workers' PYTHONPATH): MULTIMODAL_DATASET_KERAS_NIGHTLY.
NIGHTLY = os.environ.get("MULTIMODAL_DATASET_KERAS_NIGHTLY")


def run_torch(tmp_path, mode, keras_path=None):
    port = free_port()
    outs = [tmp_path / f"process{i}.json" for i in range(2)]
    env = {"KERAS_BACKEND": "torch"}
    if keras_path:
        env["PYTHONPATH"] = os.pathsep.join([keras_path, os.environ.get("PYTHONPATH", "")])
    run_workers([[str(out), mode, str(i), str(port)] for i, out in enumerate(outs)], tmp_path, env)
    return [json.loads(out.read_text()) for out in outs]


@pytest.mark.parametrize("mode", ["processes", "defaults"])
def test_two_torch_processes_under_data_parallel_read_each_sample_once_and_agree(
    tmp_path, mode, backend
):
    if backend != "torch" or not NIGHTLY:
        pytest.fail("runs on the torch session, with MULTIMODAL_DATASET_KERAS_NIGHTLY set")
    results = run_torch(tmp_path, mode, NIGHTLY)
    assert [r["keras"][:4] for r in results] == ["3.16"] * 2
    runs = [r["pad_remainder"] for r in results]
    assert [r["processes"] for r in results] == [2, 2]
    assert [r["shard"] for r in runs] == [[0, 2], [1, 2]]
    assert [r["sharded_by_keras"] for r in runs] == [mode == "defaults"] * 2
    for epoch in range(EPOCHS):
        first, second = (set(r["ids"][epoch]) for r in runs)
        assert not first & second
        assert first | second == set(range(SAMPLES))
    assert runs[0]["weights_sha256"] == runs[1]["weights_sha256"]  # one model, DDP
