"""NumericColumns and Standardizer: columns parsed, checked and standardised with
statistics fitted on the rows given (the training rows), bad cells named or replaced."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import gather
from multimodal_dataset import NumericColumns, SampleError, Standardizer


@pytest.mark.keras
def test_columns_are_standardised_with_their_own_statistics_when_fitted_here():
    numbers = NumericColumns({"a": [1.0, 2.0, 3.0], "b": ["10", "10", "10"]})
    batch = gather(numbers)
    np.testing.assert_allclose(batch[:, 0], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    np.testing.assert_array_equal(batch[:, 1], 0.0)  # a constant column: std 1, not 0
    assert numbers.standardizer.columns == ("a", "b")


@pytest.mark.keras
def test_new_rows_use_the_training_statistics():
    train = NumericColumns({"a": [0.0, 10.0]})
    new = NumericColumns({"a": [5.0, 20.0]}, standardizer=train.standardizer)
    np.testing.assert_allclose(gather(new)[:, 0], [0.0, 3.0])


def test_a_standardizer_for_other_columns_is_refused():
    fitted = Standardizer.fit(np.zeros((2, 1)), ["a"])
    with pytest.raises(ValueError, match=r"fitted on columns \['a'\].*these columns are \['b'\]"):
        NumericColumns({"b": [1.0, 2.0]}, standardizer=fitted)


@pytest.mark.keras
@pytest.mark.parametrize(
    ("value", "message"),
    [("", "has no value"), ("abc", "holds 'abc', which is not a number"), ("inf", "holds inf")],
)
def test_a_bad_cell_is_named_or_replaced_by_the_mean(value, message):
    with pytest.raises(SampleError, match=rf"sample 1 \(table row 7\): column 'a' {message}"):
        NumericColumns({"a": ["1", value, "3"]}, rows=[6, 7, 8])
    replaced = NumericColumns({"a": ["1", value, "3"]}, on_error="replace")
    assert gather(replaced)[1, 0] == 0.0  # the training mean, once standardised
    assert set(replaced.problems) == {1}


def test_a_standardizer_round_trips_through_its_dict():
    fitted = Standardizer.fit(np.array([[1.0, 5.0], [3.0, 5.0]]), ["a", "b"])
    assert Standardizer.from_dict(fitted.to_dict()) == fitted
