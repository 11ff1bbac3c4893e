"""Table cells as values: which are missing, and the distinct values of a column.

Shared by the categorical inputs and the targets, which both look at each distinct value
once rather than at each row.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_missing(value: Any) -> bool:
    """None, a blank string or a float NaN: a cell without a value."""
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and value != value)
    )


def is_list_column(values: np.ndarray) -> bool:
    """Whether a column holds a list per row (its first cell with a value is one)."""
    array = np.asarray(values)
    if array.dtype != object:
        return array.ndim > 1
    first = next((v for v in array if v is not None), None)
    return isinstance(first, (list, tuple, np.ndarray))


def distinct_cells(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct cells, each cell's position among them and each one's count: sorted
    in C where the values sort (numbers, or strings alone), else one look-up per row."""
    array = np.asarray(values)
    if array.dtype == object:
        hashed = distinct_hashed(array)
        if hashed is not None:
            return hashed
    try:
        distinct, inverse, counts = np.unique(array, return_inverse=True, return_counts=True)
    except TypeError:  # a mix that does not sort (None among strings)
        seen: dict[Any, int] = {}
        inverse = np.fromiter(
            (seen.setdefault(hashable(v), len(seen)) for v in array), np.int64, len(array)
        )
        distinct = np.empty(len(seen), dtype=object)
        distinct[:] = list(seen)
        counts = np.bincount(inverse, minlength=len(seen))
    return distinct, inverse.reshape(-1), counts


def distinct_hashed(array: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """`distinct_cells` of an object column by hashing in C (pyarrow's dictionary encoding,
    where pyarrow is installed): sorting Python strings costs microseconds a row. None
    where pyarrow is missing or the cells are not one Arrow type (a mix of str and int)."""
    try:
        import pyarrow as pa
    except ImportError:
        return None
    try:
        encoded = pa.array(array, from_pandas=True).dictionary_encode()
    except (pa.ArrowException, TypeError, ValueError):
        return None
    dictionary = encoded.dictionary.to_pylist()
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    if encoded.null_count:  # missing cells: one more distinct value, None
        indices = np.where(np.isnan(indices), len(dictionary), indices)
        dictionary.append(None)
    inverse = np.asarray(indices, np.int64)
    distinct = np.empty(len(dictionary), dtype=object)
    distinct[:] = dictionary
    return distinct, inverse, np.bincount(inverse, minlength=len(dictionary))


def hashable(value: Any) -> Any:
    """A cell as a dict key: lists and arrays by their text."""
    return value if not isinstance(value, (list, np.ndarray, dict)) else repr(value)
