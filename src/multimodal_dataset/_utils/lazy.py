"""Public names imported on first use (PEP 562).

A package's ``__init__`` lists where each of its public names lives; `exports` gives it the
module ``__getattr__`` and ``__dir__`` that import a name's module when the name is first
read. Importing one module of the package (what a worker process does to unpickle a
source) then imports that module's own dependencies only, not Keras, a backend, pandas or
pyarrow through the package's ``__init__``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def exports(
    package: str, locations: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public name ``n`` is
    ``locations[n]``'s attribute ``n``, or the module ``locations[n]`` itself when that is
    ``package.n`` (a subpackage or submodule)."""

    def __getattr__(name: str) -> Any:
        location = locations.get(name)
        if location is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(location)
        value = module if location == f"{package}.{name}" else getattr(module, name)
        setattr(sys.modules[package], name, value)  # later reads skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(locations))

    return __getattr__, __dir__
