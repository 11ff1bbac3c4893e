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

from multimodal_dataset._utils.cells import (
    distinct_cells,
    hashable,
    is_list_column,
    is_missing,
)
from multimodal_dataset.io.spilled import preallocated
from multimodal_dataset.sources.protocol import (
    GatherContext,
    PrecomputedSource,
    check_rows,
    flagged,
    sample_bits,
)

#: The id of a missing value and of a value that is not a category.
UNKNOWN_ID = 0
#: How a category is shown where it has no name (id 0).
UNKNOWN = "[UNK]"


class CategoryOverflowWarning(UserWarning):
    """A categorical column has more categories than ``max_categories``: the least
    frequent share id 0 with missing and unseen values."""


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


def check_max_categories(max_categories: Any) -> None:
    """Refuses anything but None or an integer of at least 2 (id 0 and one category)."""
    if max_categories is not None and (
        not isinstance(max_categories, int)
        or isinstance(max_categories, bool)
        or max_categories < 2
    ):
        raise ValueError(
            f"max_categories must be an integer of at least 2 (id 0 for missing and "
            f"unseen values, and at least one category); got {max_categories!r}."
        )


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
        check_max_categories(max_categories)
        if is_list_column(values):
            first = next(v for v in np.asarray(values) if v is not None)
            raise ValueError(
                f"categorical={column!r}: the column holds {type(first).__name__}s "
                f"({first!r}), not one category per row. Give a column of strings or "
                "integers (a list of labels is a multi_label target)."
            )
        distinct, _, counts = distinct_cells(values)
        totals: dict[Any, int] = {}
        for value, count in zip(distinct.tolist(), counts.tolist(), strict=True):
            if not is_missing(value):
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
        distinct, inverse, _ = distinct_cells(values)
        mapped = np.zeros(len(distinct), np.int32)
        missing = np.zeros(len(distinct), bool)
        for u, value in enumerate(distinct.tolist()):
            if is_missing(value):
                missing[u] = True
            else:
                mapped[u] = ids.get(_key(hashable(value)), UNKNOWN_ID)
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
        self._flags = (
            (sample_bits(missing), f"column {column!r} has no value: id 0"),
            (
                sample_bits(unseen),
                f"column {column!r} holds a category not fitted on the training rows: id 0",
            ),
        )

    def report_bad(self, indices: np.ndarray, context: GatherContext) -> None:
        """Records each sample of ``indices`` whose id is 0 for a missing or unseen value
        (a bit per sample and kind: O(batch), whatever the number of samples)."""
        for bits, why in self._flags:
            for sample in flagged(bits, indices):
                self.bad_sample(context, int(sample), why)

    def category_name(self, category_id: int) -> str:
        """The category of an id (`show_batch` shows it)."""
        return self.lookup.name(int(category_id))

    def __repr__(self) -> str:
        return (
            f"CategoricalColumn({len(self)} rows, column={self.column!r}, "
            f"{len(self.lookup.categories)} categories)"
        )
