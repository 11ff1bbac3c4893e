"""`from_table`: a CSV, Parquet file or data frame of image paths, captions and numbers to
training and validation datasets in one call, with preprocessing fitted on the training rows.

Image paths are read with `ImageFiles`, captions with `TextTokens`, numeric columns with
`NumericColumns`, and the target column becomes class ids (or float targets). What was
fitted (vocabulary, numeric statistics, class names) is a `TablePreprocessing`, exposed as
``train.preprocessing``; save it with the model and load it to feed new rows identically.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from multimodal_dataset.augmentation import ImageAugmentation
from multimodal_dataset.dataset import MultimodalDataset
from multimodal_dataset.images import ColorMode, ImageFiles
from multimodal_dataset.numeric import NumericColumns, Standardizer, parse_numeric
from multimodal_dataset.sources import OnError, SampleError, check_on_error
from multimodal_dataset.text import TextTokens, Vocabulary

_FORMAT = "multimodal_dataset.TablePreprocessing"
TARGET_KINDS = ("int", "float", "classes")
_INT32 = np.iinfo(np.int32)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_SPLIT_STREAM = 0x5B117  # keeps the split's random stream apart from the shuffle's


@dataclass
class Table:
    """A table read into memory: column name -> one numpy array per column.

    Attributes:
        columns: The columns, in the table's order.
        folder: The folder of the table's file, that relative image paths start from
            (None for an in-memory frame).
        name: A description for messages, e.g. the file name.
    """

    columns: dict[str, np.ndarray]
    folder: str | None
    name: str

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column(self, name: str, role: str) -> np.ndarray:
        """The column ``name``, or an error listing the columns that exist."""
        if name not in self.columns:
            existing = list(self.columns)
            close = difflib.get_close_matches(str(name), [str(c) for c in existing], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(
                f"{role}={name!r}: {self.name} has no column {name!r}.{hint} Its columns are: "
                f"{', '.join(map(repr, existing))}."
            )
        return self.columns[name]


def read_table(source: Any) -> Table:
    """Reads a CSV/TSV or Parquet path, a pandas DataFrame or a pyarrow Table.

    CSV files are read as UTF-8 with Python's ``csv`` module (no extra dependency); bytes
    that are not UTF-8 are kept (as surrogate escapes) so the error can name the row and
    column. Parquet needs ``pyarrow``.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        folder = os.path.dirname(os.path.abspath(path))
        name = f"table {path!r}"
        if os.path.exists(path) and not os.path.isfile(path):
            raise ValueError(
                f"Cannot read {path!r}: it is not a regular file (a folder, a named pipe or a "
                "device). Pass the path of a .csv, .tsv or .parquet file."
            )
        lowered = path.lower()
        if lowered.endswith((".csv", ".tsv", ".txt")):
            return Table(_read_csv(path, "\t" if lowered.endswith(".tsv") else ","), folder, name)
        if lowered.endswith((".parquet", ".pq")):
            pq = _import_pyarrow_parquet()
            return Table(_arrow_columns(pq.read_table(path)), folder, name)
        raise ValueError(
            f"Cannot read {path!r}: from_table reads .csv, .tsv, .parquet and .pq files, or a "
            "pandas DataFrame or pyarrow Table."
        )
    kinds = {f"{c.__module__.split('.')[0]}.{c.__name__}" for c in type(source).__mro__}
    if "pandas.DataFrame" in kinds:
        return Table({c: source[c].to_numpy() for c in source.columns}, None, "the DataFrame")
    if "pyarrow.Table" in kinds:
        return Table(_arrow_columns(source), None, "the pyarrow Table")
    if isinstance(source, Table):
        return source
    raise TypeError(
        "from_table takes the path of a .csv or .parquet file, a pandas DataFrame or a "
        f"pyarrow Table; got {type(source).__name__}."
    )


def _read_csv(path: str, delimiter: str) -> dict[str, np.ndarray]:
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which is not a name.
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path!r} is empty; a table needs a header row.") from None
        rows = list(reader)
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(
                f"{path!r}, table row {i} (line {reader.line_num - len(rows) + i + 1}) has "
                f"{len(row)} fields, but the header has {len(header)}: {header!r}. Quote "
                "fields that contain the delimiter."
            )
    columns = {}
    for j, name in enumerate(header):
        values = np.empty(len(rows), dtype=object)
        values[:] = [row[j] for row in rows]
        columns[name] = values
    return columns


def _import_pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "Reading Parquet needs pyarrow. Install it with "
            "`pip install 'multimodal-dataset[tables]'` (or `pip install pyarrow`)."
        ) from None
    return pq


def _arrow_columns(table: Any) -> dict[str, np.ndarray]:
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


@dataclass
class TablePreprocessing:
    """What `from_table` fitted on the training rows, and how it reads a table.

    Save it with the model (`save`), load it at inference (`load`) and call `dataset` on
    new rows: they are tokenized with the same vocabulary, standardised with the same
    statistics and labelled with the same class ids.

    Attributes:
        image, text, target: Column names (None where unused).
        numeric: The numeric column names, in input order.
        image_size: ``(height, width)`` images are resized to.
        text_length: Token ids per caption.
        color_mode: ``"rgb"``, ``"grayscale"`` or ``"rgba"``.
        vocabulary: The `Vocabulary` fitted on the training captions.
        standardizer: The `Standardizer` fitted on the training rows.
        classes: For a target column of names: the class names, class id = position.
        target_kind: ``"int"`` (class ids), ``"float"`` (regression) or ``"classes"``.
        tokenizer: A plugged-in tokenizer used instead of ``vocabulary``.
    """

    image: str | None = None
    text: str | None = None
    numeric: tuple[str, ...] = ()
    target: str | None = None
    image_size: tuple[int, int] | None = None
    text_length: int | None = None
    color_mode: ColorMode = "rgb"
    vocabulary: Vocabulary | None = None
    standardizer: Standardizer | None = None
    classes: list[Any] | None = None
    target_kind: str | None = None
    tokenizer: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------ building inputs

    def inputs(
        self,
        table: Table,
        rows: np.ndarray,
        *,
        root: str | None = None,
        on_error: OnError = "raise",
        augment: ImageAugmentation | None = None,
        max_tokens: int | None = None,
        allow_outside_root: bool = False,
    ) -> Any:
        """The input sources for ``rows`` of ``table``: one, or a tuple (image, text, numeric).

        Fits the vocabulary and the numeric statistics on these rows if they are not
        fitted yet. Image paths are confined to ``root`` (default: the table's folder, or
        the working directory for an in-memory table) unless ``allow_outside_root``.
        """
        sources: list[Any] = []
        if self.image is not None:
            assert self.image_size is not None
            paths = [_path(p) for p in table.column(self.image, "image")[rows]]
            sources.append(
                ImageFiles(
                    paths,
                    self.image_size,
                    root=root if root is not None else (table.folder or os.getcwd()),
                    allow_outside_root=allow_outside_root,
                    color_mode=self.color_mode,
                    augment=augment,
                    on_error=on_error,
                    rows=rows,
                    column=self.image,
                )
            )
        if self.text is not None:
            assert self.text_length is not None
            tokens = TextTokens(
                table.column(self.text, "text")[rows],
                self.text_length,
                vocabulary=self.vocabulary,
                tokenizer=self.tokenizer,
                max_tokens=max_tokens,
                on_error=on_error,
                rows=rows,
                column=self.text,
            )
            if self.tokenizer is None:
                self.vocabulary = tokens.vocabulary
            sources.append(tokens)
        if self.numeric:
            columns = {c: table.column(c, "numeric")[rows] for c in self.numeric}
            numbers = NumericColumns(
                columns, standardizer=self.standardizer, on_error=on_error, rows=rows
            )
            self.standardizer = numbers.standardizer
            sources.append(numbers)
        return sources[0] if len(sources) == 1 else tuple(sources)

    def targets(self, table: Table, rows: np.ndarray) -> np.ndarray:
        """The target of each of ``rows``: class ids (int32) or floats.

        Raises:
            SampleError: For a missing target, a class name not seen when fitting, or a
                value that does not fit the target kind (a fraction for ``"int"``, a
                number beyond int32 or float32). Targets are never replaced, whatever
                ``on_error`` says.
        """
        assert self.target is not None
        values = table.column(self.target, "target")[rows]
        if self.target_kind is None:
            self._fit_target(table.column(self.target, "target"))
        if self.target_kind == "classes":
            assert self.classes is not None
            ids = {c: i for i, c in enumerate(self.classes)}
            out = np.empty(len(values), dtype=np.int32)
            for k, value in enumerate(values):
                if _is_missing(value) or _label(value) not in ids:
                    raise SampleError(
                        f"targets: sample {k} (table row {int(rows[k])}, column "
                        f"{self.target!r}): {_label_problem(value, self.classes)}"
                    )
                out[k] = ids[_label(value)]
            return out
        parsed, problems = parse_numeric(values, str(self.target))
        problems.update(_kind_problems(parsed, str(self.target), str(self.target_kind)))
        if problems:
            k = min(problems)
            raise SampleError(
                f"targets: sample {k} (table row {int(rows[k])}): {problems[k]}. Every row "
                "needs a target of the kind the model was trained on "
                f"(target_kind={self.target_kind!r}); targets are never replaced, rounded or "
                "wrapped. Fix the row or drop it from the table."
            )
        if self.target_kind == "int":
            return parsed.astype(np.int32)
        return parsed.astype(np.float32)

    def _fit_target(self, values: np.ndarray) -> None:
        """Decides the target kind (unless given) and the class names, from every row."""
        missing = [i for i, v in enumerate(values) if _is_missing(v)]
        if missing:
            raise SampleError(
                f"targets: table row {missing[0]}, column {self.target!r} has no value"
                f"{_and_more(missing)}. Every row needs a target; fix the row or drop it from "
                "the table."
            )
        column = str(self.target)
        if self.target_kind == "classes":
            self.classes = _sorted_classes({_label(v) for v in values})
            return
        parsed, problems = parse_numeric(values, column)
        if self.target_kind is None:
            if len(problems) == len(values):
                self.target_kind = "classes"  # names: every value is a non-number
                self.classes = _sorted_classes({_label(v) for v in values})
                return
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
            integral = bool(np.all(parsed == np.round(parsed)))
            self.target_kind = "int" if integral else "float"
        problems.update(_kind_problems(parsed, column, self.target_kind))
        if problems:
            k = min(problems)
            raise ValueError(
                f"Target column {column!r}, table row {k}: {problems[k]}"
                f"{_and_more(sorted(problems))}. Fix or drop the row, or pass another "
                "target_kind ('int', 'float' or 'classes')."
            )

    # --------------------------------------------------------------------------- datasets

    def dataset(
        self,
        table: Any,
        *,
        root: str | os.PathLike[str] | None = None,
        on_error: OnError = "raise",
        allow_outside_root: bool = False,
        **dataset_kwargs: Any,
    ) -> MultimodalDataset:
        """A dataset of every row of ``table``, preprocessed as the training rows were.

        Batches hold the rows in table order (``shuffle=False`` unless you pass
        ``shuffle=True``), so ``model.predict(ds)`` and ``model.evaluate(ds)`` line up with
        the rows, whether or not the table has the target column. Targets are included
        when it has; otherwise the dataset is for inference (inputs only).

        Args:
            table: A path, DataFrame or pyarrow Table with the same columns.
            root: Folder for relative image paths (default: the table's folder).
            on_error: ``"raise"`` or ``"replace"`` (see `from_table`).
            allow_outside_root: Read image paths outside ``root`` (see `from_table`).
            **dataset_kwargs: Passed to `MultimodalDataset` (``batch_size``, ...).
        """
        unfitted = (
            self.text is not None and self.vocabulary is None and self.tokenizer is None
        ) or (bool(self.numeric) and self.standardizer is None)
        if unfitted:
            raise ValueError(
                "This preprocessing has not been fitted yet (no vocabulary or numeric "
                "statistics), so new rows would be scaled by their own statistics. Use the "
                "one from `from_table(...)` (train.preprocessing) or TablePreprocessing.load."
            )
        data = read_table(table)
        rows = np.arange(len(data))
        folder = os.fspath(root) if root is not None else None
        inputs = self.inputs(
            data,
            rows,
            root=folder,
            on_error=check_on_error(on_error),
            allow_outside_root=allow_outside_root,
        )
        targets = None
        if self.target is not None and self.target in data.columns:
            targets = self.targets(data, rows)
        dataset_kwargs.setdefault("shuffle", False)
        ds = MultimodalDataset(inputs, targets, **dataset_kwargs)
        ds.preprocessing = self
        return ds

    # ---------------------------------------------------------------------- saving/loading

    def to_dict(self) -> dict[str, Any]:
        tokenizer = None
        if self.tokenizer is not None:
            if not hasattr(self.tokenizer, "to_str"):
                raise ValueError(
                    "This preprocessing uses a custom tokenizer callable, which cannot be "
                    "saved. Save your tokenizer yourself, or use a Hugging Face "
                    "tokenizers.Tokenizer (saved with it) or the built-in vocabulary."
                )
            tokenizer = self.tokenizer.to_str()
        return {
            "format": _FORMAT,
            "version": 1,
            "image": self.image,
            "text": self.text,
            "numeric": list(self.numeric),
            "target": self.target,
            "image_size": list(self.image_size) if self.image_size else None,
            "text_length": self.text_length,
            "color_mode": self.color_mode,
            "vocabulary": self.vocabulary.to_dict() if self.vocabulary else None,
            "standardizer": self.standardizer.to_dict() if self.standardizer else None,
            "classes": self.classes,
            "target_kind": self.target_kind,
            "tokenizer": tokenizer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TablePreprocessing:
        if data.get("format") != _FORMAT:
            raise ValueError(
                f"Not a saved TablePreprocessing (expected format {_FORMAT!r}). Save one "
                "with train.preprocessing.save(path)."
            )
        tokenizer = None
        if data.get("tokenizer") is not None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_str(data["tokenizer"])
        vocabulary, standardizer = data.get("vocabulary"), data.get("standardizer")
        return cls(
            image=data["image"],
            text=data["text"],
            numeric=tuple(data["numeric"]),
            target=data["target"],
            image_size=tuple(data["image_size"]) if data["image_size"] else None,
            text_length=data["text_length"],
            color_mode=data["color_mode"],
            vocabulary=Vocabulary.from_dict(vocabulary) if vocabulary else None,
            standardizer=Standardizer.from_dict(standardizer) if standardizer else None,
            classes=data["classes"],
            target_kind=data["target_kind"],
            tokenizer=tokenizer,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the columns, vocabulary, statistics and classes as one JSON file."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TablePreprocessing:
        """Reads a preprocessing written by `save`."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


def from_table(
    table: Any,
    *,
    image: str | None = None,
    text: str | None = None,
    numeric: str | Sequence[str] = (),
    target: str | None = None,
    image_size: tuple[int, int] | None = None,
    text_length: int | None = None,
    validation_split: float = 0.2,
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
    color_mode: ColorMode = "rgb",
    max_tokens: int | None = None,
    tokenizer: Any = None,
    augment: ImageAugmentation | None = None,
    on_error: OnError = "raise",
    target_kind: str | None = None,
    allow_outside_root: bool = False,
    **dataset_kwargs: Any,
) -> tuple[MultimodalDataset, MultimodalDataset | None]:
    """Training and validation datasets from a table of image paths, texts and numbers.

    Rows are split by ``seed`` into training and validation rows; the vocabulary and the
    numeric statistics are fitted on the training rows only and applied to both. Batches
    are ``((image, text, numeric), target)`` with the inputs in that order (the ones given;
    a single input is not wrapped in a tuple).

    Example:

    ```python
    train, val = from_table(
        "data/manifest.csv", image="image", text="caption",
        numeric=["width", "height"], target="label",
        image_size=(64, 64), text_length=20, batch_size=32,
    )
    model.fit(train, validation_data=val, epochs=5)
    train.preprocessing.save("preprocessing.json")
    ```

    Args:
        table: A ``.csv``/``.tsv`` or ``.parquet`` path, a pandas DataFrame or a pyarrow
            Table.
        image: Column of image file paths, relative to the table's folder (or ``root``).
        text: Column of raw texts.
        numeric: Column name(s) of numbers, standardised with training statistics.
        target: Column of targets: integers (class ids), floats (regression) or names
            (class ids in sorted order, kept in ``preprocessing.classes``). None for an
            inference-only table.
        image_size: ``(height, width)`` of the decoded images (required with ``image``).
        text_length: Token ids per text (required with ``text``).
        validation_split: Fraction of rows for validation (``int(fraction * rows)``, as in
            Keras); 0 for no validation dataset (then the second value is None).
        seed: Seed of the split and, unless ``dataset_kwargs`` has one, of the shuffle.
        root: Folder for relative image paths, instead of the table's folder (the working
            directory for an in-memory table). Paths may not leave it: absolute paths
            elsewhere and ``..`` escapes are bad samples, unless ``allow_outside_root``.
        color_mode: ``"rgb"``, ``"grayscale"`` or ``"rgba"``.
        max_tokens: Vocabulary size (padding and unknown included); None keeps all words.
        tokenizer: A callable or Hugging Face tokenizer to use instead of a vocabulary.
        augment: An `ImageAugmentation` for the training images (never validation).
        on_error: ``"raise"`` at the first bad file or value, naming the row and column;
            ``"replace"`` to fill bad inputs (zero image, empty text, mean value) and
            report them at the end of each epoch. Targets are never replaced.
        target_kind: ``"int"`` (class ids), ``"float"`` (regression) or ``"classes"``
            (every value a class name, numbers too: ``1, 2, 10`` are ordered as numbers).
            None infers it from the whole column, and refuses a column that mixes
            numbers with other values (naming the rows) instead of guessing.
        allow_outside_root: Read image paths that leave ``root`` (absolute paths, ``..``).
            A table is data that may come from elsewhere; pass True only if you trust it.
        **dataset_kwargs: Passed to the training `MultimodalDataset` (``batch_size``,
            ``workers``, ...). The validation dataset gets the same ``batch_size``,
            ``workers`` and ``use_multiprocessing``, and keeps every row in order.

    Returns:
        ``(train, validation)``; both have ``.preprocessing``, the fitted
        `TablePreprocessing`.

    Raises:
        KeyError: For a column the table does not have, listing the columns it has.
        SampleError: For a bad file or value (``on_error="raise"``) or a missing target.
        ValueError: For a split that leaves no training or no validation rows.
    """
    data = read_table(table)
    numeric = (numeric,) if isinstance(numeric, str) else tuple(numeric)
    if image is None and text is None and not numeric:
        raise ValueError(
            "from_table needs at least one input column: image=, text= or numeric=. The "
            f"table's columns are: {', '.join(map(repr, data.columns))}."
        )
    for role, name in (("image", image), ("text", text), ("target", target)):
        if name is not None:
            data.column(name, role)
    for name in numeric:
        data.column(name, "numeric")
    if image is not None and image_size is None:
        raise ValueError("image_size=(height, width) is required with image=.")
    if text is not None and text_length is None:
        raise ValueError("text_length= (token ids per text) is required with text=.")
    on_error = check_on_error(on_error)
    if target_kind is not None:
        if target is None:
            raise ValueError("target_kind= was given without target=; name the target column.")
        if target_kind not in TARGET_KINDS:
            raise ValueError(
                f"target_kind must be one of {TARGET_KINDS} (or None to infer it); got "
                f"{target_kind!r}."
            )
    train_rows, val_rows = split_rows(len(data), validation_split, seed)
    preprocessing = TablePreprocessing(
        image=image,
        text=text,
        numeric=numeric,
        target=target,
        image_size=None if image_size is None else (int(image_size[0]), int(image_size[1])),
        text_length=text_length,
        color_mode=color_mode,
        tokenizer=tokenizer,
        target_kind=target_kind,
    )
    folder = os.fspath(root) if root is not None else None

    def make(rows: np.ndarray, augment_: ImageAugmentation | None, **kwargs: Any) -> Any:
        inputs = preprocessing.inputs(
            data,
            rows,
            root=folder,
            on_error=on_error,
            augment=augment_,
            max_tokens=max_tokens,
            allow_outside_root=allow_outside_root,
        )
        targets = None if target is None else preprocessing.targets(data, rows)
        ds = MultimodalDataset(inputs, targets, **kwargs)
        ds.preprocessing = preprocessing
        return ds

    if target is not None:
        preprocessing._fit_target(data.column(target, "target"))
    dataset_kwargs.setdefault("seed", seed)
    train = make(train_rows, augment, **dataset_kwargs)
    validation = None
    if len(val_rows):
        keep = ("batch_size", "workers", "use_multiprocessing", "max_queue_size", "seed")
        val_kwargs = {k: v for k, v in dataset_kwargs.items() if k in keep}
        validation = make(val_rows, None, shuffle=False, **val_kwargs)
    return train, validation


def split_rows(num_rows: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row numbers (each sorted), a pure function of the seed."""
    if not 0 <= validation_split < 1:
        raise ValueError(
            f"validation_split must be in [0, 1) (the fraction of rows for validation); got "
            f"{validation_split!r}."
        )
    if num_rows == 0:
        raise ValueError("The table has no rows.")
    num_val = int(validation_split * num_rows)
    if validation_split > 0 and num_val == 0:
        raise ValueError(
            f"validation_split={validation_split} of {num_rows} rows leaves no validation row "
            "(Keras takes int(fraction * rows)). Use a larger fraction or validation_split=0."
        )
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _SPLIT_STREAM])))
    order = rng.permutation(num_rows)
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def _path(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else str(value)


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and np.isnan(value))
    )


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


def _label(value: Any) -> str:
    """Class names are strings: what a CSV holds, and what JSON saves without change."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _label_problem(value: Any, classes: list[Any]) -> str:
    if _is_missing(value):
        return "the target is missing. Every row needs a target; fix the row or drop it"
    shown = ", ".join(map(repr, classes[:10])) + (", ..." if len(classes) > 10 else "")
    return (
        f"the target {value!r} is not one of the classes seen when fitting ({shown}). New "
        "classes need a new model; drop these rows or retrain"
    )
