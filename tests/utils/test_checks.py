"""Argument checks shared by every module: one wording, the argument's name and value."""

from __future__ import annotations

import numpy as np
import pytest

from multimodal_dataset._utils.checks import IntegerArgumentError, check_choice, check_int


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_positive_integers_pass_as_ints(value):
    assert check_int(value, "n") == int(value) and type(check_int(value, "n")) is int


@pytest.mark.parametrize("value", [1.5, "3", True, None])
def test_non_integers_are_both_type_and_value_errors_naming_the_argument(value):
    with pytest.raises(
        IntegerArgumentError, match=rf"n must be a positive integer; got n={value!r}"
    ):
        check_int(value, "n")
    assert issubclass(IntegerArgumentError, TypeError) and issubclass(
        IntegerArgumentError, ValueError
    )


def test_too_small_values_say_the_minimum():
    with pytest.raises(
        ValueError, match=r"pad must be a non-negative integer \(pixels\); got pad=-1"
    ):
        check_int(-1, "pad", minimum=0, what="pixels")
    with pytest.raises(ValueError, match="an integer of at least 2"):
        check_int(1, "k", minimum=2)


def test_a_choice_lists_the_allowed_values():
    assert check_choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"mode must be one of 'a', 'b'; got 'c'"):
        check_choice("c", "mode", ("a", "b"))
