"""`testing.s3_server`, the helper our tests and users' tests start moto with: its server
never outlives the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("moto")

PARENT = """
import os, sys, time
from multimodal_dataset import testing
with testing.s3_server() as options:
    print(options["endpoint_url"], flush=True)
    time.sleep(600)
"""


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_server_exits_when_the_process_that_started_it_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        url = parent.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        (server,) = children_of(parent.pid)
        assert alive(server)
        os.kill(parent.pid, signal.SIGKILL)  # no finally block, no atexit
        parent.wait(10)
        end = time.monotonic() + 10
        while alive(server) and time.monotonic() < end:
            time.sleep(0.05)
        assert not alive(server), f"the S3 server {server} outlived its parent"
    finally:
        parent.kill()
        parent.wait()


def test_the_server_stops_when_its_block_ends():
    from multimodal_dataset import testing

    before = set(children_of(os.getpid()))
    with testing.s3_server() as options:
        (server,) = [p for p in children_of(os.getpid()) if alive(p) and p not in before]
        assert options["endpoint_url"].startswith("http://127.0.0.1:")
    assert not alive(server)
