"""`TablePreprocessing`: what `from_table` fitted on the training rows (vocabulary,
numeric statistics, target kind and classes) and how it turns a table's rows into sources;
`TableDataset`, the dataset it makes, which carries it (``ds.preprocessing``).

Save it with the model and load it at inference: new rows are then tokenized,
standardised and labelled exactly as the training rows were.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset.dataset import MultimodalDataset
from multimodal_dataset.io.persistence import Saveable
from multimodal_dataset.sources.images.augmentation import ImageAugmentation
from multimodal_dataset.sources.images.decoded_cache import CacheValidation
from multimodal_dataset.sources.images.decoding import ColorMode
from multimodal_dataset.sources.images.files import ImageFiles
from multimodal_dataset.sources.images.from_bytes import ImageBytes
from multimodal_dataset.sources.numeric import NumericColumns, Standardizer
from multimodal_dataset.sources.protocol import OnError, SampleError, check_on_error
from multimodal_dataset.sources.text.tokens import TextTokens
from multimodal_dataset.sources.text.vocabulary import Vocabulary
from multimodal_dataset.tables.reading import read_table
from multimodal_dataset.tables.table import Table
from multimodal_dataset.tables.targets import encode_targets, fit_target


@dataclass
class TablePreprocessing(Saveable):
    """What `from_table` fitted on the training rows, and how it reads a table.

    Save it with the model (`save`), load it at inference (`load`) and call `dataset` on
    new rows: they are tokenized with the same vocabulary, standardised with the same
    statistics and labelled with the same class ids.

    Attributes:
        image, text, target: Column names (None where unused).
        numeric: The numeric column names, in input order.
        image_size: ``(height, width)`` images are resized to.
        text_length: Token ids per caption (None with ``text_buckets``).
        text_buckets: The lengths a batch of captions may be padded to (see
            `TextTokens`'s ``buckets``), instead of one ``text_length``.
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
    text_buckets: tuple[int, ...] | None = None
    color_mode: ColorMode = "rgb"
    vocabulary: Vocabulary | None = None
    standardizer: Standardizer | None = None
    classes: list[Any] | None = None
    target_kind: str | None = None
    tokenizer: Any = field(default=None, repr=False)

    FORMAT: ClassVar[str] = "multimodal_dataset.TablePreprocessing"
    INDENT: ClassVar[int | None] = 1

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
        cache: str | os.PathLike[str] | None = None,
        cache_validation: CacheValidation = "run",
    ) -> Any:
        """The input sources for ``rows`` of ``table``: one, or a tuple (image, text, numeric).

        Fits the vocabulary and the numeric statistics on these rows if they are not
        fitted yet. Image paths are confined to ``root`` (default: the table's folder, or
        the working directory for an in-memory table) unless ``allow_outside_root``.
        An image column of paths is read with `ImageFiles`; one of encoded bytes or
        ``{bytes, path}`` structs with `ImageBytes`, a batch at a time; decoded images and
        token ids kept in ``cache`` when it is given (images checked against their
        originals as ``cache_validation`` says, see `ImageFiles`).
        """
        sources: list[Any] = []
        if self.image is not None:
            assert self.image_size is not None
            folder = root if root is not None else (table.folder or os.getcwd())
            image_options: dict[str, Any] = {
                "root": folder,
                "allow_outside_root": allow_outside_root,
                "color_mode": self.color_mode,
                "augment": augment,
                "on_error": on_error,
                "rows": rows,
                "column": self.image,
                "storage_options": table.storage.storage_options if table.storage else None,
                "cache": cache,
                "cache_validation": cache_validation,
            }
            stored = table.images(self.image)
            if stored is None:  # a column of paths
                paths = [_path(p) for p in table.column(self.image, "image")[rows]]
                sources.append(ImageFiles(paths, self.image_size, **image_options))
            else:  # a column of encoded bytes, read a batch at a time
                sources.append(ImageBytes(stored, self.image_size, **image_options))
        if self.text is not None:
            check_present(table, self.text, "text", rows, on_error)
            tokens = TextTokens(
                table.text_chunks(self.text, rows),
                self.text_length,
                buckets=self.text_buckets,
                vocabulary=self.vocabulary,
                tokenizer=self.tokenizer,
                max_tokens=max_tokens,
                on_error=on_error,
                rows=rows,
                column=self.text,
                cache=cache,
            )
            if self.tokenizer is None:
                self.vocabulary = tokens.vocabulary
            elif isinstance(self.tokenizer, str):  # "bpe"/"wordpiece": trained on these rows
                self.tokenizer = tokens.tokenizer
            sources.append(tokens)
        if self.numeric:
            for name in self.numeric:
                check_present(table, name, "numeric", rows, on_error)
            columns = TableColumns(table, self.numeric, rows)  # read one at a time
            numbers = NumericColumns(
                columns, standardizer=self.standardizer, on_error=on_error, rows=rows
            )
            self.standardizer = numbers.standardizer
            sources.append(numbers)
        return sources[0] if len(sources) == 1 else tuple(sources)

    def targets(self, table: Table, rows: np.ndarray) -> np.ndarray:
        """The target of each of ``rows``: class ids (int32) or floats (see ``targets``).

        Raises:
            SampleError: For a missing target, an unseen class, or a value that does not
                fit the target kind. Targets are never replaced.
        """
        assert self.target is not None
        if self.target_kind is None:
            self.fit_target(table)
        assert self.target_kind is not None
        check_present(table, self.target, "target", rows, "raise")
        values = table.column(self.target, "target")[rows]
        return encode_targets(values, rows, self.target, self.target_kind, self.classes)

    def fit_target(self, table: Table) -> None:
        """Decides the target kind (unless given) and the class names from every row."""
        assert self.target is not None
        values = table.column(self.target, "target")
        self.target_kind, classes = fit_target(values, self.target, self.target_kind)
        if classes is not None:
            self.classes = classes

    # --------------------------------------------------------------------------- datasets

    def dataset(
        self,
        table: Any,
        *,
        root: str | os.PathLike[str] | None = None,
        on_error: OnError = "raise",
        allow_outside_root: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        cache: str | os.PathLike[str] | None = None,
        cache_validation: CacheValidation = "run",
        **dataset_kwargs: Any,
    ) -> TableDataset:
        """A dataset of every row of ``table``, preprocessed as the training rows were.

        Batches hold the rows in table order (``shuffle=False`` unless you pass
        ``shuffle=True``), so ``model.predict(ds)`` and ``model.evaluate(ds)`` line up with
        the rows, whether or not the table has the target column. Targets are included
        when it has; otherwise the dataset is for inference (inputs only).

        Args:
            table: A table with the same columns, in any form `from_table` reads.
            root: Folder for relative image paths (default: the table's folder).
            on_error: ``"raise"`` or ``"replace"`` (see `from_table`).
            allow_outside_root: Read image paths outside ``root`` (see `from_table`).
            cache_dir: Where Parquet image columns are converted (see `from_table`).
            storage_options: Options of the file system that reads URLs (see
                `from_table`).
            cache: A directory for decoded images and token ids (see `from_table`).
            cache_validation: ``"run"``, ``"epoch"`` or ``"trust"`` (see `from_table`).
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
        data = read_table(table, cache_dir, storage_options)
        rows = np.arange(len(data))
        folder = os.fspath(root) if root is not None else None
        inputs = self.inputs(
            data,
            rows,
            root=folder,
            on_error=check_on_error(on_error),
            allow_outside_root=allow_outside_root,
            cache=cache,
            cache_validation=cache_validation,
        )
        targets = None
        if self.target is not None and self.target in data.names:
            targets = self.targets(data, rows)
        dataset_kwargs.setdefault("shuffle", False)
        return TableDataset(inputs, targets, preprocessing=self, **dataset_kwargs)

    # ---------------------------------------------------------------------- saving/loading

    def _fields(self) -> dict[str, Any]:
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
            "image": self.image,
            "text": self.text,
            "numeric": list(self.numeric),
            "target": self.target,
            "image_size": list(self.image_size) if self.image_size else None,
            "text_length": self.text_length,
            "text_buckets": list(self.text_buckets) if self.text_buckets else None,
            "color_mode": self.color_mode,
            "vocabulary": self.vocabulary.to_dict() if self.vocabulary else None,
            "standardizer": self.standardizer.to_dict() if self.standardizer else None,
            "classes": self.classes,
            "target_kind": self.target_kind,
            "tokenizer": tokenizer,
        }

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> TablePreprocessing:
        tokenizer = None
        if data.get("tokenizer") is not None:
            tokenizers = optional_import("tokenizers", "Loading a Hugging Face tokenizer")
            tokenizer = tokenizers.Tokenizer.from_str(data["tokenizer"])
        vocabulary, standardizer = data.get("vocabulary"), data.get("standardizer")
        return cls(
            image=data["image"],
            text=data["text"],
            numeric=tuple(data["numeric"]),
            target=data["target"],
            image_size=tuple(data["image_size"]) if data["image_size"] else None,
            text_length=data["text_length"],
            text_buckets=tuple(data["text_buckets"]) if data.get("text_buckets") else None,
            color_mode=data["color_mode"],
            vocabulary=Vocabulary.from_dict(vocabulary) if vocabulary else None,
            standardizer=Standardizer.from_dict(standardizer) if standardizer else None,
            classes=data["classes"],
            target_kind=data["target_kind"],
            tokenizer=tokenizer,
        )


def check_present(table: Table, name: str, role: str, rows: np.ndarray, on_error: OnError) -> None:
    """With ``on_error="raise"``, a `SampleError` for the first of ``rows`` whose cell is
    absent from storage (a WebDataset sample without the member), naming where it is."""
    problems = table.missing(name)
    if not problems or on_error != "raise":
        return
    bad = np.intersect1d(np.fromiter(problems, np.int64, len(problems)), rows).tolist()
    if bad:
        more = len(bad) - 1
        also = f" ({more} more sample{'s' if more > 1 else ''} also lack it)" if more else ""
        fix = "" if role == "target" else ", or pass on_error='replace' to replace and report it"
        raise SampleError(f"{role}={name!r}: {problems[bad[0]]}{also}. Add the member{fix}.")


class TableColumns(Mapping[str, np.ndarray]):
    """Columns of a table at some rows, each read when asked for and not kept, so a
    source built column by column holds one at a time."""

    def __init__(self, table: Table, names: Sequence[str], rows: np.ndarray) -> None:
        self.table, self.names, self.rows = table, list(names), rows

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        values: np.ndarray = self.table.column(name, "numeric", keep=False)[self.rows]
        return values

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _path(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else str(value)


class TableDataset(MultimodalDataset):
    """A `MultimodalDataset` of a table's rows, with the preprocessing that built it.

    Args:
        inputs: As for `MultimodalDataset`: the sources built from the table.
        targets: As for `MultimodalDataset`: the targets read from the table.
        preprocessing: The fitted `TablePreprocessing`.
        **dataset_kwargs: Passed to `MultimodalDataset`.
    """

    def __init__(
        self,
        inputs: Any,
        targets: Any = None,
        *,
        preprocessing: TablePreprocessing,
        **dataset_kwargs: Any,
    ) -> None:
        super().__init__(inputs, targets, **dataset_kwargs)
        self.preprocessing = preprocessing

    def _class_names(self) -> list[Any] | None:
        return self.preprocessing.classes
