"""Categorical columns: strings or integers to ``int32`` ids fitted on the training rows.

`CategoryLookup` holds a column's categories, fitted on the training split only (the most
frequent first, ties by value, as Keras's ``StringLookup`` and ``IntegerLookup`` rank
them) and saved with the rest of a table's preprocessing. Id 0 is reserved for a missing
value and for a value not among them (unseen when fitting, or beyond ``max_categories``),
so inference never fails on a new category: `CategoricalColumn`, the source, reports each
such sample in the epoch's report instead (as a replacement), counted, never silent.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from multimodal_dataset.io.spilled import preallocated
from multimodal_dataset.sources.protocol import GatherContext, PrecomputedSource, check_rows

#: The id of a missing value and of a value that is not a category.
UNKNOWN_ID = 0
#: How a category is shown where it has no name (id 0).
UNKNOWN = "[UNK]"


class CategoryOverflowWarning(UserWarning):
    """A categorical column has more categories than ``max_categories``: the least
    frequent share id 0 with missing and unseen values."""


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and value != value)
    )


def _key(value: Any) -> Any:
    """The category a cell stands for: strings (bytes decoded), integers, or floats that
    are whole numbers as integers (a CSV's ``"3"`` and a Parquet's ``3`` differ)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.str_):
        return str(value)
    return value


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct cells, each cell's position among them and each one's count: sorted
    in C where the values sort (numbers, or strings alone), else one look-up per row."""
    array = np.asarray(values)
    if array.dtype == object:
        hashed = _distinct_hashed(array)
        if hashed is not None:
            return hashed
    try:
        distinct, inverse, counts = np.unique(array, return_inverse=True, return_counts=True)
    except TypeError:  # a mix that does not sort (None among strings)
        seen: dict[Any, int] = {}
        inverse = np.fromiter(
            (seen.setdefault(_hashable(v), len(seen)) for v in array), np.int64, len(array)
        )
        distinct = np.empty(len(seen), dtype=object)
        distinct[:] = list(seen)
        counts = np.bincount(inverse, minlength=len(seen))
    return distinct, inverse.reshape(-1), counts


def _distinct_hashed(array: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """`_distinct` of an object column by hashing in C (pyarrow's dictionary encoding,
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


def _hashable(value: Any) -> Any:
    return value if not isinstance(value, (list, np.ndarray, dict)) else repr(value)


@dataclass(frozen=True)
class CategoryLookup:
    """A categorical column's categories; category ``k`` (from 0) has id ``k + 1``.

    Attributes:
        column: The column name.
        categories: The categories fitted on the training rows, most frequent first
            (strings or integers).
        max_categories: The most ids there may be, id 0 included (the ``input_dim`` of an
            ``Embedding``); None: every category seen.
        dropped: How many categories seen when fitting were left out by
            ``max_categories`` (they get id 0).
    """

    column: str
    categories: tuple[Any, ...]
    max_categories: int | None = None
    dropped: int = 0

    @property
    def num_ids(self) -> int:
        """How many ids there are, 0 included: the ``input_dim`` of an ``Embedding``."""
        return len(self.categories) + 1

    def name(self, category_id: int) -> str:
        """The category of an id, as text (``[UNK]`` for 0)."""
        if 1 <= category_id <= len(self.categories):
            return str(self.categories[category_id - 1])
        return UNKNOWN

    @classmethod
    def fit(
        cls, values: np.ndarray, column: str, max_categories: int | None = None
    ) -> CategoryLookup:
        """The categories of the training ``values``: most frequent first, ties by value.

        With more than ``max_categories - 1`` categories, the least frequent are left out
        (id 0, with missing and unseen values) and a `CategoryOverflowWarning` says how
        many and how many training rows that concerns.

        Raises:
            ValueError: For ``max_categories`` below 2, or a column of lists or dicts.
        """
        if max_categories is not None and (
            not isinstance(max_categories, int) or max_categories < 2
        ):
            raise ValueError(
                f"max_categories must be an integer of at least 2 (id 0 for missing and "
                f"unseen values, and at least one category); got {max_categories!r}."
            )
        distinct, _, counts = _distinct(values)
        totals: dict[Any, int] = {}
        for value, count in zip(distinct.tolist(), counts.tolist(), strict=True):
            if isinstance(value, (list, dict, np.ndarray)):
                raise ValueError(
                    f"categorical={column!r}: the column holds {type(value).__name__}s "
                    f"({value!r}), not one category per row. Give a column of strings or "
                    "integers (a list of labels is a multi_label target)."
                )
            if not _is_missing(value):
                key = _key(value)
                totals[key] = totals.get(key, 0) + int(count)
        ranked = sorted(totals, key=lambda v: (-totals[v], isinstance(v, str), v))
        dropped = 0
        if max_categories is not None and len(ranked) > max_categories - 1:
            kept, left = ranked[: max_categories - 1], ranked[max_categories - 1 :]
            dropped = len(left)
            rows = sum(totals[v] for v in left)
            share = rows / max(1, len(values))
            warnings.warn(
                f"categorical={column!r} has {len(ranked)} categories in the training rows, "
                f"more than max_categories={max_categories} allows (id 0 is kept for "
                f"missing and unseen values): the {dropped} least frequent "
                f"({', '.join(map(repr, left[:3]))}{', ...' if dropped > 3 else ''}; "
                f"{rows} training rows, {share:.1%}) get id 0 and are reported each epoch. "
                "Raise max_categories to keep them.",
                CategoryOverflowWarning,
                stacklevel=4,
            )
            ranked = kept
        return cls(column, tuple(ranked), max_categories, dropped)

    def encode(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each value's id (``int32``), and which were missing and which unseen (id 0).

        One look-up per distinct value, not per row.
        """
        ids = {c: i + 1 for i, c in enumerate(self.categories)}
        distinct, inverse, _ = _distinct(values)
        mapped = np.zeros(len(distinct), np.int32)
        missing = np.zeros(len(distinct), bool)
        for u, value in enumerate(distinct.tolist()):
            if _is_missing(value):
                missing[u] = True
            else:
                mapped[u] = ids.get(_key(_hashable(value)), UNKNOWN_ID)
        out = mapped[inverse]
        absent = missing[inverse]
        return out, absent, (out == UNKNOWN_ID) & ~absent

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the column, the categories (strings or integers) and the cap."""
        return {
            "column": self.column,
            "categories": list(self.categories),
            "max_categories": self.max_categories,
            "dropped": self.dropped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoryLookup:
        """The lookup that `to_dict` wrote."""
        return cls(
            data["column"],
            tuple(data["categories"]),
            data.get("max_categories"),
            int(data.get("dropped", 0)),
        )


class CategoricalColumn(PrecomputedSource):
    """A categorical column as a ``(num_samples, 1)`` ``int32`` input of category ids.

    Missing values and values that are not categories get id 0; every batch that holds
    one reports it (the epoch's `ReplacedSamplesWarning` counts them), whatever
    ``on_error`` says: a new category at inference is expected, not an error.

    Args:
        values: One value per sample (strings or integers).
        lookup: The fitted categories; None fits them on these values (the training rows).
        column: The column name.
        max_categories: With ``lookup=None``: see `CategoryLookup.fit`.
        rows: Table row of each sample, named in reports.
    """

    work = "gathering category ids"

    def __init__(
        self,
        values: Sequence[Any] | np.ndarray,
        *,
        lookup: CategoryLookup | None = None,
        column: str,
        max_categories: int | None = None,
        rows: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        values = np.asarray(values)
        if lookup is None:
            lookup = CategoryLookup.fit(values, column, max_categories)
        self.lookup = lookup
        ids, missing, unseen = lookup.encode(values)
        held = preallocated((len(ids), 1), np.int32, self)  # a memory map once large
        held[:, 0] = ids
        del ids
        super().__init__(held, {}, "replace", check_rows(rows, len(held), column), column)
        self.missing_count, self.unseen_count = int(missing.sum()), int(unseen.sum())
        # One bit per sample for each kind of id 0: O(batch) look-ups, no dict per sample.
        self._missing = np.packbits(missing, bitorder="little") if self.missing_count else None
        self._unseen = np.packbits(unseen, bitorder="little") if self.unseen_count else None

    def report_bad(self, indices: np.ndarray, context: GatherContext) -> None:
        """Records each sample of ``indices`` whose id is 0 for a missing or unseen value
        (a bit per sample and kind: O(batch), whatever the number of samples)."""
        indices = np.asarray(indices, dtype=np.int64)
        for bits, why in (
            (self._missing, f"column {self.column!r} has no value: id 0"),
            (
                self._unseen,
                f"column {self.column!r} holds a category not fitted on the training rows: id 0",
            ),
        ):
            if bits is not None:
                hit = (bits[indices >> 3] >> (indices & 7).astype(np.uint8)) & 1
                for sample in indices[hit.astype(bool)]:
                    self.bad_sample(context, int(sample), why)

    def category_name(self, category_id: int) -> str:
        """The category of an id (`show_batch` shows it)."""
        return self.lookup.name(int(category_id))

    def __repr__(self) -> str:
        return (
            f"CategoricalColumn({len(self)} rows, column={self.column!r}, "
            f"{len(self.lookup.categories)} categories)"
        )
