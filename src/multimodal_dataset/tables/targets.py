"""Target columns: what kind they are (class ids, regression values, class names), decided
from the whole column or given, and every value checked against that kind.

One stray cell never decides the kind: a column that mixes numbers with other values is
refused, naming the rows. Integer ids beyond int32, fractions fed as class ids and values
beyond float32 are errors naming the row, never a wrap, a truncation or ``inf``. Targets
are never replaced, whatever ``on_error`` says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from multimodal_dataset._utils.cells import distinct_cells, is_missing
from multimodal_dataset.sources.numeric import parse_numeric
from multimodal_dataset.sources.protocol import SampleError

TARGET_KINDS = ("int", "float", "classes", "multi_label")
_INT32 = np.iinfo(np.int32)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_target_kind(target_kind: Any, targets: Sequence[str]) -> dict[str, str | None]:
    """Each target column's kind: ``target_kind`` is one kind for every target, or a dict
    of kinds by target column (a target it leaves out is inferred).

    Raises:
        ValueError: For an unknown kind, a kind without a target column, or a dict key
            that is not a target.
    """
    if target_kind is None:
        return dict.fromkeys(targets)
    if not targets:
        raise ValueError("target_kind= was given without target=; name the target column.")
    if isinstance(target_kind, Mapping):
        kinds = dict(target_kind)
    else:
        kinds = dict.fromkeys(targets, target_kind)
    unknown = [k for k in kinds if k not in targets]
    if unknown:
        raise ValueError(
            f"target_kind names {unknown!r}, which {'is' if len(unknown) == 1 else 'are'} "
            f"not among the targets {list(targets)!r}; key it by target column."
        )
    for column, kind in kinds.items():
        if kind is not None and kind not in TARGET_KINDS:
            raise ValueError(
                f"target_kind must be one of {TARGET_KINDS} (or None to infer it); got "
                f"{kind!r}" + (f" for {column!r}." if len(targets) > 1 else ".")
            )
    return {t: kinds.get(t) for t in targets}


def fit_multi_label(
    values: np.ndarray, column: str, names: Sequence[str] | None = None
) -> list[Any]:
    """The classes of a multi-label column (a list of class names or ids per row).

    ``names`` (a Hugging Face ``Sequence(ClassLabel)``'s) are the classes of ids ``0 ..
    len(names) - 1``. Otherwise lists of integer ids have the classes ``0 .. max id``
    (position = id, whether or not every id occurs), lists of names their sorted names.

    Raises:
        SampleError: For a row that is not a list.
        ValueError: For negative ids, or ids beyond ``names``.
    """
    flat, _ = _flattened(values, column, np.arange(len(values)))
    if names is not None:
        _check_ids(flat, len(names), column)
        return list(names)
    whole = flat.dtype.kind == "f" and bool(np.all(flat == np.round(flat)))
    if flat.size == 0 or flat.dtype.kind in "iu" or whole:  # ids: the classes 0 .. max id
        _check_ids(flat, None, column)
        return list(range(int(flat.max()) + 1 if flat.size else 0))
    return _sorted_classes({label(v) for v in distinct_cells(flat)[0]})


def encode_multi_label(
    values: np.ndarray, rows: np.ndarray, column: str, classes: Sequence[Any]
) -> np.ndarray:
    """Multi-hot ``(len(values), len(classes))`` float32 rows: 1 where the row lists the
    class. Integer labels are class ids (position = id); others are names.

    Raises:
        SampleError: For a row that is not a list, or a class not seen when fitting,
            naming the sample and table row.
    """
    flat, lengths = _flattened(values, column, rows)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    by_id = flat.dtype.kind in "iu" or all(isinstance(c, int) for c in classes)
    if classes and by_id:  # class ids (a Sequence(ClassLabel)'s, with names): by position
        ids = np.asarray(flat, np.float64)
        bad = np.flatnonzero((ids != np.round(ids)) | (ids < 0) | (ids >= len(classes)))
        positions = ids.astype(np.int64)
    else:
        index = {c: i for i, c in enumerate(classes)}
        positions = np.fromiter(
            (index.get(label(v), -1) for v in flat.tolist()), np.int64, len(flat)
        )
        bad = np.flatnonzero(positions < 0)
    if len(bad):
        k = int(owner[bad[0]])
        raise SampleError(
            f"targets: sample {k} (table row {int(rows[k])}, column {column!r}): the label "
            f"{flat[bad[0]]!r} is not one of the classes seen when fitting "
            f"({', '.join(map(repr, list(classes)[:10]))}{', ...' if len(classes) > 10 else ''})."
            " New classes need a new model; drop these rows or retrain."
        )
    out = np.zeros((len(lengths), len(classes)), np.float32)
    out[owner, positions] = 1.0
    return out


def _flattened(values: np.ndarray, column: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row's labels end to end, and how many each row has.

    Raises:
        SampleError: For a row whose cell is not a list (a missing target).
    """
    array = np.asarray(values)
    if array.dtype != object and array.ndim == 2:  # a fixed-length list per row
        return array.reshape(-1), np.full(len(array), array.shape[1], np.int64)
    lengths = np.zeros(len(array), np.int64)
    parts = []
    for i, cell in enumerate(array):
        if not isinstance(cell, (list, tuple, np.ndarray)):
            what = "has no value" if is_missing(cell) else f"holds {cell!r}, not a list of labels"
            raise SampleError(
                f"targets: table row {int(rows[i])}, column {column!r} {what}. A multi_label "
                "target needs a list of class names or ids per row (an empty list for "
                "none); targets are never replaced. Fix the row or drop it."
            )
        lengths[i] = len(cell)
        parts.append(np.asarray(cell))
    nonempty = [p for p in parts if p.size]
    flat = np.concatenate(nonempty) if nonempty else np.zeros(0, np.int64)
    return flat, lengths


def _check_ids(flat: np.ndarray, count: int | None, column: str) -> None:
    if flat.dtype.kind not in "iuf":
        if count is not None:
            raise ValueError(
                f"Target column {column!r} is a list of class ids with class names, but "
                f"holds {flat[:1].tolist()!r}."
            )
        return
    if flat.size and (flat.min() < 0 or (count is not None and flat.max() >= count)):
        bad = flat[(flat < 0) | (flat >= (count if count is not None else np.inf))][0]
        limit = f" and below {count} (the class names)" if count is not None else ""
        raise ValueError(
            f"Target column {column!r} lists the class id {bad!r}; ids must be at least 0"
            f"{limit}. Fix the rows."
        )


def fit_target(
    values: np.ndarray, column: str, kind: str | None, names: Sequence[str] | None = None
) -> tuple[str, list[str] | None]:
    """The kind of a target column (``kind`` if given) and its class names, from every row.

    ``names`` are a Hugging Face ``ClassLabel``'s: the column holds class ids (``"int"``)
    whose names they are, each id checked against them.

    Raises:
        SampleError: For a row without a target (Hugging Face's -1 included).
        ValueError: For a column mixing numbers with other values (kind not given), or a
            value that does not fit the kind.
    """
    if names is not None and kind in (None, "int"):
        ids = np.asarray(values)
        outside = np.flatnonzero((ids < 0) | (ids >= len(names))).tolist() if ids.size else []
        if outside:
            row = int(outside[0])
            what = (
                "has no label (-1, Hugging Face's missing label)"
                if ids[row] == -1
                else f"holds the class id {ids[row]}, beyond its {len(names)} ClassLabel names"
            )
            raise SampleError(
                f"targets: table row {row}, column {column!r} {what}{_and_more(outside)}. "
                "Every row needs a target; fix the row or drop it from the table."
            )
        return "int", list(names)
    missing = _missing_rows(values)
    if missing:
        raise SampleError(
            f"targets: table row {missing[0]}, column {column!r} has no value"
            f"{_and_more(missing)}. Every row needs a target; fix the row or drop it from "
            "the table."
        )
    if kind == "classes":
        return kind, _sorted_classes({label(v) for v in distinct_cells(values)[0]})
    parsed, problems = parse_numeric(values, column)
    if kind is None:
        if len(problems) == len(values):  # names: every value is a non-number
            return "classes", _sorted_classes({label(v) for v in distinct_cells(values)[0]})
        if problems:
            rows = sorted(problems)
            shown = ", ".join(f"row {r} ({values[r]!r})" for r in rows[:5])
            raise ValueError(
                f"Target column {column!r} mixes numbers with {len(rows)} value"
                f"{'s' if len(rows) > 1 else ''} that are not finite numbers: {shown}"
                f"{', ...' if len(rows) > 5 else ''}. A target column must be all numbers "
                "(class ids or regression values) or all class names, so one stray cell "
                "cannot decide the kind. Fix or drop those rows, or pass target_kind="
                "'classes' to use every value as a class name (or 'int' / 'float')."
            )
        kind = "int" if bool(np.all(parsed == np.round(parsed))) else "float"
    if _first_problem(parsed, problems, column, kind) is not None:
        raise _kind_error(column, problems)
    return kind, None


def encode_targets(
    values: np.ndarray, rows: np.ndarray, column: str, kind: str, classes: list[Any] | None
) -> np.ndarray:
    """Class ids (``int32``) or floats for the target ``values`` of table ``rows``.

    Raises:
        SampleError: For a missing target, a class name not seen when fitting, or a
            value that does not fit the kind, naming the sample and table row.
    """
    if kind == "classes":
        assert classes is not None
        return _class_ids(values, rows, column, classes)
    parsed, problems = parse_numeric(values, column)
    bad = _first_problem(parsed, problems, column, kind)
    if bad is not None:
        raise SampleError(
            f"targets: sample {bad} (table row {int(rows[bad])}): {problems[bad]}. Every row "
            f"needs a target of the kind the model was trained on (target_kind={kind!r}); "
            "targets are never replaced, rounded or wrapped. Fix the row or drop it from "
            "the table."
        )
    return parsed.astype(np.int32 if kind == "int" else np.float32)


def _missing_rows(values: np.ndarray) -> list[int]:
    """The rows without a value: none in an integer column, the NaNs of a float one;
    otherwise the distinct values are looked at (a set: hashing, no per-row Python), and
    each cell only when one of them is missing."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return []
    if array.dtype.kind == "f":
        return np.flatnonzero(np.isnan(array)).tolist()
    try:
        if not any(is_missing(v) for v in set(array)):
            return []
    except TypeError:  # unhashable cells (lists): looked at one by one
        pass
    return [i for i, v in enumerate(array) if is_missing(v)]


def _class_ids(values: np.ndarray, rows: np.ndarray, column: str, classes: list[Any]) -> np.ndarray:
    """Each value's class id: one look-up per distinct value, not per row.

    Raises:
        SampleError: For the first sample whose value is missing or not a class.
    """
    ids = {c: i for i, c in enumerate(classes)}
    distinct, inverse, _ = distinct_cells(values)
    mapped = np.full(len(distinct), -1, np.int32)
    for u, value in enumerate(distinct):
        if not is_missing(value) and label(value) in ids:
            mapped[u] = ids[label(value)]
    out: np.ndarray = mapped[inverse]
    bad = np.flatnonzero(out < 0)
    if len(bad):
        k = int(bad[0])
        raise SampleError(
            f"targets: sample {k} (table row {int(rows[k])}, column "
            f"{column!r}): {_label_problem(values[k], classes)}"
        )
    return out


def _kind_error(column: str, problems: dict[int, str]) -> ValueError:
    rows = sorted(problems)
    return ValueError(
        f"Target column {column!r}, table row {rows[0]}: {problems[rows[0]]}{_and_more(rows)}. "
        "Fix or drop the row, or pass another target_kind ('int', 'float' or 'classes')."
    )


def _first_problem(
    parsed: np.ndarray, problems: dict[int, str], column: str, kind: str
) -> int | None:
    """Adds the values that do not fit ``kind`` to ``problems``; the first problem row."""
    problems.update(_kind_problems(parsed, column, kind))
    return min(problems) if problems else None


def _kind_problems(parsed: np.ndarray, column: str, kind: str) -> dict[int, str]:
    """Rows whose (finite) value does not fit the target kind: fractions or values beyond
    int32 for ``"int"``, values beyond float32 for ``"float"``."""
    problems: dict[int, str] = {}
    finite = np.isfinite(parsed)
    if kind == "int":
        for i in np.flatnonzero(finite & (parsed != np.round(parsed))):
            problems[int(i)] = (
                f"column {column!r} holds {parsed[i]:g}, which is not an integer class id"
            )
        for i in np.flatnonzero(finite & ((parsed < _INT32.min) | (parsed > _INT32.max))):
            problems.setdefault(
                int(i),
                f"column {column!r} holds {parsed[i]:.0f}, outside the int32 range of class "
                f"ids [{_INT32.min}, {_INT32.max}] (pass target_kind='float' for regression)",
            )
    elif kind == "float":
        for i in np.flatnonzero(finite & (np.abs(parsed) > _FLOAT32_MAX)):
            problems[int(i)] = (
                f"column {column!r} holds {parsed[i]:g}, beyond float32's range (it would "
                "become inf); rescale the target"
            )
    return problems


def _sorted_classes(labels: set[str]) -> list[str]:
    """Class names in sorted order: names that are numbers first, by value (1, 2, 10),
    then the others as strings."""

    def key(label: str) -> tuple[int, float, str]:
        try:
            value = float(label)
        except ValueError:
            return 1, 0.0, label
        return (0, value, label) if np.isfinite(value) else (1, 0.0, label)

    return sorted(labels, key=key)


def _and_more(rows: Sequence[int]) -> str:
    more = len(rows) - 1
    return f" (and {more} more row{'s' if more > 1 else ''})" if more > 0 else ""


def label(value: Any) -> str:
    """Class names are strings: what a CSV holds, and what JSON saves without change."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _label_problem(value: Any, classes: list[Any]) -> str:
    if is_missing(value):
        return "the target is missing. Every row needs a target; fix the row or drop it"
    shown = ", ".join(map(repr, classes[:10])) + (", ..." if len(classes) > 10 else "")
    return (
        f"the target {value!r} is not one of the classes seen when fitting ({shown}). New "
        "classes need a new model; drop these rows or retrain"
    )
