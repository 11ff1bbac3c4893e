"""Numeric table columns: parsed, validated and standardised with training statistics.

`Standardizer` holds each column's mean and standard deviation, fitted on the training
split only and saved with the rest of a table's preprocessing, so validation and inference
rows are scaled exactly like the training rows. `NumericColumns` is the source that feeds
the standardised ``(num_samples, num_columns)`` matrix to the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from multimodal_dataset.io.spilled import preallocated
from multimodal_dataset.sources.protocol import (
    OnError,
    PrecomputedSource,
    check_on_error,
    check_rows,
)


@dataclass(frozen=True)
class Standardizer:
    """Per-column ``(x - mean) / std``, with statistics fitted on training rows.

    Attributes:
        columns: The column names, in the order of the model's numeric input.
        mean: Each column's training mean.
        std: Each column's training standard deviation (1 for a constant column, so it
            standardises to 0 rather than dividing by 0).
    """

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, values: np.ndarray, columns: Sequence[str]) -> Standardizer:
        """Fits on a ``(rows, columns)`` float array; NaN entries (bad values) are skipped."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(columns):
            raise ValueError(
                f"Expected a (rows, {len(columns)}) array for columns {list(columns)!r}; "
                f"got shape {values.shape}."
            )
        stats = [column_stats(values[:, j], name) for j, name in enumerate(columns)]
        return cls(tuple(columns), tuple(m for m, _ in stats), tuple(s for _, s in stats))

    def transform(self, values: np.ndarray, dtype: str = "float32") -> np.ndarray:
        """Standardises a ``(rows, columns)`` array; NaN entries become 0 (the mean)."""
        scaled = (np.asarray(values, dtype=np.float64) - self.mean) / self.std
        return np.nan_to_num(scaled, nan=0.0).astype(dtype)

    def transform_column(self, j: int, values: np.ndarray, out: np.ndarray) -> None:
        """Standardises column ``j``'s ``values`` into ``out`` (a column of the output);
        NaN entries become 0 (the mean)."""
        standardize_into(values, self.mean[j], self.std[j], out)

    def to_dict(self) -> dict[str, Any]:
        """The columns, means and standard deviations, as JSON-ready lists."""
        return {"columns": list(self.columns), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Standardizer:
        """The standardizer that `to_dict` wrote."""
        return cls(tuple(data["columns"]), tuple(data["mean"]), tuple(data["std"]))


def standardize_into(values: np.ndarray, mean: float, std: float, out: np.ndarray) -> None:
    """Writes ``(values - mean) / std`` into ``out``; NaN entries become 0 (the mean)."""
    scaled = np.asarray(values, dtype=np.float64) - mean
    scaled /= std
    scaled[np.isnan(scaled)] = 0.0
    out[...] = scaled


def column_stats(values: np.ndarray, name: str) -> tuple[float, float]:
    """A column's mean and standard deviation over its finite values (1 for a constant
    column, so it standardises to 0 rather than dividing by 0).

    Raises:
        ValueError: When it has no finite value.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError(
            f"Numeric column {name!r} has no valid value in the training rows, so it "
            "cannot be standardised. Check the column, or leave it out of numeric=."
        )
    deviation = float(finite.std())
    return float(finite.mean()), deviation if deviation > 0 else 1.0


def parse_numeric(values: Any, column: str) -> tuple[np.ndarray, dict[int, str]]:
    """Parses one table column to ``float64``; bad entries become NaN and are explained.

    Returns:
        The values, and for every missing, NaN, infinite or non-numeric entry its row
        position -> what is wrong.
    """
    array = np.asarray(values)
    problems: dict[int, str] = {}
    if array.dtype.kind in "iufb":
        parsed = array.astype(np.float64)
    else:
        try:
            parsed = array.astype(np.float64)
        except (TypeError, ValueError):
            parsed = np.empty(len(array), dtype=np.float64)
            for i, value in enumerate(array):
                try:
                    parsed[i] = float(value)
                except (TypeError, ValueError):
                    parsed[i] = math.nan
                    empty = value is None or (isinstance(value, str) and not value.strip())
                    problems[i] = (
                        f"column {column!r} has no value"
                        if empty
                        else f"column {column!r} holds {_plain(value)!r}, which is not a number"
                    )
    for bad in np.flatnonzero(~np.isfinite(parsed)):
        problems.setdefault(
            int(bad),
            f"column {column!r} has no value (NaN)"
            if np.isnan(parsed[bad])
            else f"column {column!r} holds {parsed[bad]}, not a finite number",
        )
    parsed[~np.isfinite(parsed)] = math.nan
    return parsed, problems


class NumericColumns(PrecomputedSource):
    """Numeric columns as one standardised ``(num_samples, num_columns)`` float input.

    Args:
        columns: Column name -> one value per sample (numbers or numeric strings).
        standardizer: Statistics to scale with; None fits them on these rows (do that for
            the training rows only and pass ``train.standardizer`` for the others).
        dtype: The output float dtype (``keras.config.floatx()`` by default).
        on_error: ``"raise"`` for a missing, NaN, infinite or non-numeric value, or
            ``"replace"`` to use the training mean (0 after standardising) and report it.
        rows: Table row of each sample, named in error messages.

    Raises:
        SampleError: For a bad value when ``on_error="raise"``, naming row and column.
    """

    def __init__(
        self,
        columns: Mapping[str, Sequence[Any] | np.ndarray],
        *,
        standardizer: Standardizer | None = None,
        dtype: str | None = None,
        on_error: OnError = "raise",
        rows: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        if not columns:
            raise ValueError("NumericColumns needs at least one column.")
        names = list(columns)
        if standardizer is not None and list(standardizer.columns) != names:
            raise ValueError(
                f"The standardizer was fitted on columns {list(standardizer.columns)!r}, but "
                f"these columns are {names!r}. Give the same columns in the same order."
            )
        if dtype is None:
            import keras

            dtype = keras.config.floatx()
        # One column at a time (a mapping may read each from its table on demand): parsed,
        # fitted and standardised straight into its column of the output.
        problems: dict[int, str] = {}
        out: np.ndarray | None = None
        stats: list[tuple[float, float]] = []
        for j, name in enumerate(names):
            values, bad = parse_numeric(columns[name], name)
            for i, problem in bad.items():
                problems[i] = f"{problems[i]}; {problem}" if i in problems else problem
            if out is None:
                out = preallocated((len(values), len(names)), dtype, self)
            elif len(values) != len(out):
                raise ValueError(
                    f"Numeric column {name!r} has {len(values)} values but {names[0]!r} has "
                    f"{len(out)}; every column needs one value per sample."
                )
            if standardizer is None:
                stats.append(column_stats(values, name))
                standardize_into(values, *stats[-1], out[:, j])
            else:
                standardizer.transform_column(j, values, out[:, j])
            del values
        assert out is not None
        if standardizer is None:
            standardizer = Standardizer(
                tuple(names), tuple(m for m, _ in stats), tuple(s for _, s in stats)
            )
        self.standardizer = standardizer
        super().__init__(
            out,
            problems,
            check_on_error(on_error),
            check_rows(rows, len(out), "NumericColumns"),
            None,
        )
        self.raise_or_keep("NumericColumns")

    def __repr__(self) -> str:
        return f"NumericColumns({len(self)} rows, columns={list(self.standardizer.columns)!r})"


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``'abc'``, not ``np.str_('abc')``)."""
    return value.item() if isinstance(value, np.generic) else value
