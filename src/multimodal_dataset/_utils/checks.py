"""Argument checks shared by every module: integers in range, one of several choices.

Errors say what was expected and what was received, with the argument's name, so that
every class checks its arguments the same way and says so the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


class IntegerArgumentError(TypeError, ValueError):
    """An integer argument of another type (``2.5``, ``"32"``, ``True``).

    Both a `TypeError` (what it is) and a `ValueError` (what argument checks raise), as
    numpy's ``AxisError`` is both a ``ValueError`` and an ``IndexError``.
    """


def check_int(value: Any, name: str, *, minimum: int = 1, what: str = "") -> int:
    """``value`` as an ``int``, or an error naming ``name``.

    Args:
        value: The argument.
        name: Its name, as the user wrote it (``"batch_size"``).
        minimum: The smallest allowed value (1: a positive integer).
        what: What the number counts, shown after the requirement (``"ids per sample"``).

    Raises:
        IntegerArgumentError: For a bool or a non-integer.
        ValueError: For an integer below ``minimum``.
    """
    requirement = (
        "a positive integer"
        if minimum == 1
        else "a non-negative integer"
        if minimum == 0
        else f"an integer of at least {minimum}"
    )
    if what:
        requirement += f" ({what})"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise IntegerArgumentError(
            f"{name} must be {requirement}; got {name}={value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"{name} must be {requirement}; got {name}={value}.")
    return int(value)


def check_choice(value: Any, name: str, choices: Iterable[Any], hint: str = "") -> Any:
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    choices = tuple(choices)
    if value not in choices:
        listing = ", ".join(map(repr, choices))
        raise ValueError(f"{name} must be one of {listing}{hint}; got {value!r}.")
    return value
