"""What a test uses of Keras, seen while it runs, so that its marks cannot drift.

The matrix runs each test where it can fail (noxfile.py): every test once, on the current
Keras with JAX; the tests marked ``backend`` also on TensorFlow and PyTorch; the tests
marked ``backend`` or ``keras`` also on the oldest supported Keras and on keras-nightly.

- ``backend``: the test computes with a Keras backend: ``fit``, ``evaluate``, ``predict``,
  ``compile``, a layer called, ``keras.ops``, ``keras.random``, ``load_model``, devices of
  ``keras.distribution``, or the backend's name read by the test (``keras.backend.backend()``
  or the ``backend`` fixture), which it reads to expect something of that backend.
- ``keras``: the test uses Keras's own Python code, whose behaviour depends on the Keras
  version, but no backend: it builds a ``keras.utils.PyDataset`` (every
  ``MultimodalDataset``), reads ``keras.config``, uses ``keras.tree``, ``keras.utils``,
  ``keras.version()`` or the active ``keras.distribution``.

`install` wraps those entry points once (conftest, before any test module is imported);
`Recording` collects what one test called, in any thread of the test process. Work done
in a subprocess is not seen: tests that train in one carry their mark by hand.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import keras

BACKEND = "backend"
KERAS = "keras"

#: Which marks satisfy a use: a backend test also runs wherever Keras tests run.
SATISFIED_BY = {BACKEND: {BACKEND}, KERAS: {BACKEND, KERAS}}

_lock = threading.Lock()
_current: dict[str, set[str]] | None = None


def _record(kind: str, name: str) -> None:
    current = _current
    if current is not None:
        with _lock:
            current.setdefault(kind, set()).add(name)


TESTS = str(Path(__file__).resolve().parent)

#: A kind of use, or how to tell it from the caller's file (the backend's name: a test
#: that reads it expects something of that backend; the package reads it for Keras).
Kind = str | Callable[[str], str]


def backend_if_a_test_reads_it(caller: str) -> str:
    return BACKEND if caller.startswith(TESTS) else KERAS


def _wrapped(kind: Kind, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(function, "_marks_kind", None):
        return function

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _record(kind if isinstance(kind, str) else kind(sys._getframe(1).f_code.co_filename), name)
        return function(*args, **kwargs)

    wrapper._marks_kind = kind  # type: ignore[attr-defined]
    return wrapper


def _wrap_attribute(owner: Any, attribute: str, kind: Kind, name: str) -> None:
    function = inspect.getattr_static(owner, attribute, None)
    if function is None:
        return
    if isinstance(function, staticmethod | classmethod):
        wrapped = type(function)(_wrapped(kind, name, function.__func__))
    else:
        wrapped = _wrapped(kind, name, function)
    setattr(owner, attribute, wrapped)


def _wrap_functions(module: ModuleType, kind: str) -> None:
    """Every public function of ``module`` and of its public submodules (keras.ops.image,
    keras.random...); classes are left alone (wrapping them would break isinstance)."""
    seen: set[int] = set()

    def visit(module: ModuleType, prefix: str) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        for attribute in dir(module):
            if attribute.startswith("_"):
                continue
            value = getattr(module, attribute)
            if isinstance(value, ModuleType):
                if value.__name__.startswith(module.__name__ + "."):
                    visit(value, f"{prefix}.{attribute}")
            elif callable(value) and not isinstance(value, type):
                setattr(module, attribute, _wrapped(kind, f"{prefix}.{attribute}", value))

    visit(module, module.__name__.replace("keras.api.", "keras.").replace("._tf_keras", ""))


_installed = False


def install() -> None:
    """Wraps Keras's entry points (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    model = keras.Model
    for method in (
        "fit",
        "evaluate",
        "predict",
        "compile",
        "train_on_batch",
        "test_on_batch",
        "predict_on_batch",
    ):
        _wrap_attribute(model, method, BACKEND, f"Model.{method}")
    _wrap_attribute(keras.layers.Layer, "__call__", BACKEND, "a layer called")
    _wrap_functions(keras.ops, BACKEND)
    _wrap_functions(keras.random, BACKEND)
    for module in (keras.saving, keras.models):
        _wrap_attribute(module, "load_model", BACKEND, "load_model")
    for module, prefix in ((keras.backend, "keras.backend"), (keras.config, "keras.config")):
        _wrap_attribute(module, "backend", backend_if_a_test_reads_it, f"{prefix}.backend")
    _wrap_attribute(keras.distribution, "list_devices", BACKEND, "keras.distribution devices")
    for cls in ("DeviceMesh", "DataParallel", "ModelParallel"):
        owner = getattr(keras.distribution, cls, None)
        if owner is not None:
            _wrap_attribute(owner, "__init__", BACKEND, f"keras.distribution.{cls}")

    _wrap_attribute(keras.utils.PyDataset, "__init__", KERAS, "keras.utils.PyDataset")
    _wrap_functions(keras.config, KERAS)  # keras.config.backend: wrapped above
    _wrap_functions(keras.tree, KERAS)
    _wrap_functions(keras.utils, KERAS)
    for function in ("distribution", "set_distribution"):
        _wrap_attribute(keras.distribution, function, KERAS, f"keras.distribution.{function}")
    _wrap_attribute(keras, "version", KERAS, "keras.version")


def _clear_package_caches() -> None:
    """Empties the package's cached functions (``functools.cache``: which Keras version,
    whether it reads ahead), so that every test that needs one calls Keras again and is
    seen, not only the first test of the run to need it."""
    for name, module in list(sys.modules.items()):
        if name.startswith("multimodal_dataset") and module is not None:
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)) and hasattr(value, "cache_info"):
                    value.cache_clear()


class Recording:
    """What Keras entry points were called between `start` and `stop`, by kind."""

    def start(self) -> None:
        global _current
        _clear_package_caches()
        with _lock:
            _current = {}

    def stop(self) -> dict[str, set[str]]:
        global _current
        with _lock:
            used, _current = _current or {}, None
        return used


def missing_marks(used: dict[str, set[str]], marks: set[str]) -> dict[str, set[str]]:
    """The kinds of use that none of ``marks`` covers, with what was called."""
    return {kind: names for kind, names in used.items() if names and not SATISFIED_BY[kind] & marks}


def explain(nodeid: str, missing: dict[str, set[str]]) -> str:
    kind = BACKEND if BACKEND in missing else KERAS
    calls = ", ".join(sorted(set().union(*missing.values())))
    where = {
        BACKEND: "on TensorFlow, JAX and PyTorch, and on every Keras version",
        KERAS: "on every Keras version the package claims",
    }[kind]
    return (
        f"{nodeid} uses {calls} but is not marked {kind!r}, so the test matrix would not "
        f"run it {where}. Mark it: @pytest.mark.{kind} on the test, or "
        f"pytestmark = pytest.mark.{kind} in its module (see tests/keras_marks.py)."
    )
