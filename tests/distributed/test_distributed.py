"""Multi-device and multi-process training with keras.distribution on JAX, on this
machine's CPU: each test runs worker.py in fresh processes (device count and the
distributed runtime are fixed when JAX starts) with a time limit, and checks what every
process read and learned."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

# Trains in subprocesses, where conftest's guard cannot see it: marked by hand.
pytestmark = pytest.mark.backend

WORKER = Path(__file__).with_name("worker.py")
SAMPLES, BATCH_SIZE, EPOCHS = 203, 8, 2
TIME_LIMIT = 240  # seconds; a hung collective fails the test instead of hanging CI


def run_workers(commands, tmp_path, extra_env=None):
    env = {**os.environ, "KERAS_BACKEND": "jax", **(extra_env or {})}
    with contextlib.ExitStack() as stack:
        logs = [
            stack.enter_context(open(tmp_path / f"worker{i}.log", "w"))
            for i in range(len(commands))
        ]
        processes = [
            subprocess.Popen([sys.executable, str(WORKER), *c], env=env, stdout=log, stderr=log)
            for c, log in zip(commands, logs, strict=True)
        ]
        try:
            for p in processes:
                p.wait(timeout=TIME_LIMIT)
        finally:
            for p in processes:
                p.kill()
    for i, p in enumerate(processes):
        output = (tmp_path / f"worker{i}.log").read_text()[-3000:]
        assert p.returncode == 0, f"worker {i} failed:\n{output}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def keras_version(results):
    return tuple(int(part) for part in results[0]["keras"].split(".")[:2])


def refused_by_old_keras(results) -> bool:
    """Keras 3.8-3.10 train multi-process runs from tf.data only: the dataset says so when
    it is built, naming the fix (a clear error, not a hang or a fraction)."""
    if keras_version(results) >= (3, 11):
        return False
    for r in results:
        assert "Keras 3.11 lifted that" in r["error"], r
    return True


def assert_each_epoch_reads_every_sample_once(epochs_ids, expected):
    assert len(epochs_ids) == EPOCHS
    for ids in epochs_ids:
        assert sorted(ids) == sorted(expected)


def test_data_parallel_on_four_cpu_devices_trains_through_an_epoch_that_does_not_divide(
    tmp_path,
):
    out = tmp_path / "devices.json"
    run_workers(
        [[str(out), "devices"]],
        tmp_path,
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
    )
    result = json.loads(out.read_text())
    assert result["devices"] == 4 and result["processes"] == 1
    padded = result["pad_remainder"]
    assert padded["shard"] == [0, 1] and padded["steps"] == -(-SAMPLES // BATCH_SIZE)
    assert padded["batch_shapes"] == [[BATCH_SIZE, 32, 32, 3]]  # the last batch too
    assert_each_epoch_reads_every_sample_once(padded["ids"], range(SAMPLES))
    assert all(0 < loss < 10 for loss in padded["loss"])
    dropped = result["drop_remainder"]
    assert dropped["steps"] == SAMPLES // BATCH_SIZE
    assert all(len(ids) == SAMPLES - SAMPLES % BATCH_SIZE for ids in dropped["ids"])


def test_two_processes_read_disjoint_shards_that_cover_each_epoch_and_agree_on_weights(
    tmp_path,
):
    port = free_port()
    outs = [tmp_path / f"process{i}.json" for i in range(2)]
    run_workers(
        [[str(out), "processes", str(i), str(port)] for i, out in enumerate(outs)], tmp_path
    )
    results = [json.loads(out.read_text()) for out in outs]
    assert [r["processes"] for r in results] == [2, 2]
    if refused_by_old_keras(results):
        return
    for mode, steps in (("pad_remainder", -(-SAMPLES // 16)), ("drop_remainder", SAMPLES // 16)):
        runs = [r[mode] for r in results]
        assert [r["shard"] for r in runs] == [[0, 2], [1, 2]]
        assert [r["steps"] for r in runs] == [steps, steps]
        for epoch in range(EPOCHS):
            first, second = (set(r["ids"][epoch]) for r in runs)
            assert not first & second  # disjoint
            covered = first | second
            if mode == "pad_remainder":
                assert covered == set(range(SAMPLES))
            else:
                assert len(covered) == SAMPLES - SAMPLES % 16
        # SPMD: both processes apply the same global gradient, so end bit-identical.
        assert runs[0]["weights_sha256"] == runs[1]["weights_sha256"]
        assert runs[0]["loss"] == runs[1]["loss"]


def test_with_data_parallels_defaults_every_keras_reads_each_sample_once_or_names_the_fix(
    tmp_path,
):
    """DataParallel's default auto_shard_dataset=True: Keras 3.16+ shards a PyDataset
    itself (the dataset lays its batches out for it), 3.15 refuses it at the start of fit
    naming the fix, 3.8 feeds it as it is (the dataset shards itself). Never a fraction of
    the data, never a hang (the time limit)."""
    port = free_port()
    outs = [tmp_path / f"process{i}.json" for i in range(2)]
    run_workers([[str(out), "defaults", str(i), str(port)] for i, out in enumerate(outs)], tmp_path)
    results = [json.loads(out.read_text()) for out in outs]
    if refused_by_old_keras(results):
        return
    if "error" in results[0]:  # Keras 3.11-3.15: its own error, naming the fix
        assert not results[0]["keras_shards"] and keras_version(results) < (3, 16)
        for r in results:
            assert "auto_shard_dataset = False" in r["error"]
        return
    runs = [r["pad_remainder"] for r in results]
    assert [r["sharded_by_keras"] for r in runs] == [results[0]["keras_shards"]] * 2
    assert [r["shard"] for r in runs] == [[0, 2], [1, 2]]
    for epoch in range(EPOCHS):
        first, second = (set(r["ids"][epoch]) for r in runs)
        assert not first & second
        assert first | second == set(range(SAMPLES))
    assert runs[0]["weights_sha256"] == runs[1]["weights_sha256"]
