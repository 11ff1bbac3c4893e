"""The guard that keeps the marks true: a test that uses a backend or Keras without the
mark saying so fails, naming the mark to add; a marked one passes. Run in a subprocess
with this suite's conftest, on every Keras version (the entry points it wraps move)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.keras

HERE = Path(__file__).parent

CASES = """
import keras
import numpy as np
import pytest

from multimodal_dataset import MultimodalDataset


def test_unmarked_op():
    keras.ops.add(1, 2)


def test_unmarked_fit():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(np.zeros((4, 1)), np.zeros(4), verbose=0)


def test_unmarked_layer_call():
    keras.layers.Dense(2)(np.zeros((1, 3), "float32"))


def test_unmarked_random():
    keras.random.uniform((2,))


def test_unmarked_backend_fixture(backend):
    assert backend


def test_unmarked_pydataset():
    MultimodalDataset(np.zeros((4, 1)), np.zeros(4), batch_size=2)


@pytest.mark.backend
def test_marked_op():
    keras.ops.add(1, 2)


@pytest.mark.keras
def test_marked_pydataset():
    MultimodalDataset(np.zeros((4, 1)), np.zeros(4), batch_size=2)[0]


@pytest.mark.backend
def test_a_backend_mark_covers_keras_too():
    MultimodalDataset(np.zeros((4, 1)), np.zeros(4), batch_size=2)


def test_nothing_of_keras():
    assert np.arange(3).sum() == 3
"""


def test_a_test_using_the_backend_or_keras_unmarked_fails_naming_the_mark(pytester):
    for name in ("conftest.py", "keras_marks.py"):
        shutil.copy(HERE / name, pytester.path / name)
    pytester.makepyfile(test_cases=textwrap.dedent(CASES))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=4, failed=6)
    out = result.stdout.str()
    for name, mark, calls in [
        ("test_unmarked_op", "backend", "keras.ops.add"),
        ("test_unmarked_fit", "backend", "Model.fit"),
        ("test_unmarked_layer_call", "backend", "a layer called"),
        ("test_unmarked_random", "backend", "keras.random.uniform"),
        ("test_unmarked_backend_fixture", "backend", "the backend fixture"),
        ("test_unmarked_pydataset", "keras", "keras.utils.PyDataset"),
    ]:
        line = next(line for line in out.splitlines() if f"::{name} uses" in line)
        assert calls in line and f"@pytest.mark.{mark}" in line, line
