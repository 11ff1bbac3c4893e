"""`TablePreprocessing`: what `from_table` fitted on the training rows (vocabularies,
numeric statistics, categories, target kinds and classes) and how it turns a table's rows
into sources;
`TableDataset`, the dataset it makes, which carries it (``ds.preprocessing``).

Save it with the model and load it at inference: new rows are then tokenized,
standardised and labelled exactly as the training rows were.
"""

from __future__ import annotations

import datetime
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from multimodal_dataset._utils.cells import is_list_column
from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset.dataset import MultimodalDataset
from multimodal_dataset.io.persistence import Saveable
from multimodal_dataset.sources.categorical import CategoricalColumn, CategoryLookup
from multimodal_dataset.sources.images.augmentation import ImageAugmentation
from multimodal_dataset.sources.images.decoded_cache import CacheValidation
from multimodal_dataset.sources.images.decoding import ColorMode
from multimodal_dataset.sources.images.files import ImageFiles
from multimodal_dataset.sources.images.from_bytes import ImageBytes
from multimodal_dataset.sources.numeric import NumericColumns, Standardizer
from multimodal_dataset.sources.protocol import OnError, SampleError, check_on_error
from multimodal_dataset.sources.text.streaming import Chunk, DecodedChunks, TextChunks
from multimodal_dataset.sources.text.streaming import fit as fit_texts
from multimodal_dataset.sources.text.tokens import TextTokens
from multimodal_dataset.sources.text.vocabulary import Vocabulary
from multimodal_dataset.tables.arrow_tables import temporal_error
from multimodal_dataset.tables.reading import read_table
from multimodal_dataset.tables.table import Table
from multimodal_dataset.tables.targets import (
    encode_multi_label,
    encode_targets,
    fit_multi_label,
    fit_target,
)

Structure = Literal["tuple", "dict"]
#: ``inputs=`` of `from_table`.
STRUCTURES = ("tuple", "dict")


@dataclass
class TablePreprocessing(Saveable):
    """What `from_table` fitted on the training rows, and how it reads a table.

    Save it with the model (`save`), load it at inference (`load`) and call `dataset` on
    new rows: they are tokenized with the same vocabularies, standardised with the same
    statistics, given the same category ids and labelled with the same class ids.

    Attributes:
        images, texts, numeric, categorical, targets: The column names of each kind, in
            input order.
        structure: ``"tuple"``: inputs by position, ``(images..., texts..., numeric,
            categorical...)`` with the numeric columns as one ``(n, k)`` array (one input
            alone is not wrapped); ``"dict"``: inputs keyed by column name, each numeric
            column its own ``(n, 1)`` input (and several targets keyed by column name).
        image_size: ``(height, width)`` images are resized to.
        text_length: Token ids per text (None with ``text_buckets``).
        text_buckets: The lengths a batch of texts may be padded to (see `TextTokens`'s
            ``buckets``), instead of one ``text_length``.
        color_mode: ``"rgb"``, ``"grayscale"`` or ``"rgba"``.
        value_range: The range images' values are scaled to (see `ImageFiles`).
        shared_vocabulary: Whether the text columns share one vocabulary (or tokenizer),
            fitted on all of them.
        vocabularies: Each text column's `Vocabulary` (one object when shared).
        tokenizers: Each text column's plugged-in or trained tokenizer, used instead of
            a vocabulary.
        standardizer: The `Standardizer` of the numeric columns.
        categories: Each categorical column's `CategoryLookup`.
        max_categories: The most ids a categorical column may have, id 0 included.
        target_kinds: Each target's kind: ``"int"`` (class ids), ``"float"``
            (regression), ``"classes"`` (names to class ids) or ``"multi_label"``.
        target_classes: Each class or multi-label target's class names (class id =
            position; a Hugging Face ``ClassLabel``'s names).
    """

    images: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    structure: Structure = "tuple"
    image_size: tuple[int, int] | None = None
    text_length: int | None = None
    text_buckets: tuple[int, ...] | None = None
    color_mode: ColorMode = "rgb"
    value_range: tuple[float, float] = (0.0, 1.0)
    shared_vocabulary: bool = False
    vocabularies: dict[str, Vocabulary] = field(default_factory=dict)
    tokenizers: dict[str, Any] = field(default_factory=dict, repr=False)
    standardizer: Standardizer | None = None
    categories: dict[str, CategoryLookup] = field(default_factory=dict)
    max_categories: int | None = None
    target_kinds: dict[str, str | None] = field(default_factory=dict)
    target_classes: dict[str, list[Any]] = field(default_factory=dict)

    FORMAT: ClassVar[str] = "multimodal_dataset.TablePreprocessing"
    #: 2: several columns of each kind, categorical columns, dict inputs, several and
    #: multi-label targets, the image value range. Version 1 files still load.
    VERSION: ClassVar[int] = 2
    INDENT: ClassVar[int | None] = 1

    # ---------------------------------------------------------- one column of each kind

    @property
    def image(self) -> str | None:
        """The image column, where there is one (`images` lists them all)."""
        return _only(self.images, "images")

    @property
    def text(self) -> str | None:
        """The text column, where there is one (`texts` lists them all)."""
        return _only(self.texts, "texts")

    @property
    def target(self) -> str | None:
        """The target column, where there is one (`targets` lists them all)."""
        return _only(self.targets, "targets")

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The vocabulary of the text column, or the one the text columns share."""
        vocabulary: Vocabulary | None = self._one_of(self.vocabularies, "vocabularies")
        return vocabulary

    @property
    def tokenizer(self) -> Any:
        """The tokenizer of the text column, or the one the text columns share."""
        return self._one_of(self.tokenizers, "tokenizers")

    @property
    def classes(self) -> list[Any] | None:
        """The class names of the target, where there is one target with class names."""
        target = self.target
        return None if target is None else self.target_classes.get(target)

    @property
    def target_kind(self) -> str | None:
        """The kind of the target, where there is one (`target_kinds` gives each)."""
        target = self.target
        return None if target is None else self.target_kinds.get(target)

    def _one_of(self, by_column: Mapping[str, Any], name: str) -> Any:
        distinct = {id(v): v for v in by_column.values()}
        if len(distinct) > 1:
            raise ValueError(
                f"The text columns {list(self.texts)!r} each have their own; use "
                f"preprocessing.{name}[column]."
            )
        return next(iter(distinct.values()), None)

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
        tokenizer: Any = None,
    ) -> Any:
        """The input sources for ``rows`` of ``table``, in `structure`.

        Fits the vocabularies, the numeric statistics and the categories on these rows
        where they are not fitted yet. Image paths are confined to ``root`` (default: the
        table's folder, or the working directory for an in-memory table) unless
        ``allow_outside_root``. An image column of paths is read with `ImageFiles`; one
        of encoded bytes or ``{bytes, path}`` structs with `ImageBytes`, a batch at a
        time; decoded images and token ids kept in ``cache`` when it is given (images
        checked against their originals as ``cache_validation`` says, see `ImageFiles`).
        ``tokenizer`` (a callable, a Hugging Face tokenizer, or ``"bpe"``/``"wordpiece"``
        to train one) is used where the text columns have none yet.
        """
        sources: dict[str, Any] = {}
        for name in self.images:
            sources[name] = self._images(
                table,
                name,
                rows,
                root,
                on_error,
                augment,
                allow_outside_root,
                cache,
                cache_validation,
            )
        if self.texts:
            self._fit_shared_vocabulary(table, rows, tokenizer, max_tokens)
        for name in self.texts:
            check_present(table, name, "text", rows, on_error)
            given = self.tokenizers.get(name, tokenizer if name not in self.vocabularies else None)
            tokens = TextTokens(
                table.text_chunks(name, rows),
                self.text_length,
                buckets=self.text_buckets,
                vocabulary=self.vocabularies.get(name),
                tokenizer=given,
                max_tokens=max_tokens,
                on_error=on_error,
                rows=rows,
                column=name,
                cache=cache,
            )
            if given is None:
                assert tokens.vocabulary is not None
                self.vocabularies[name] = tokens.vocabulary
            else:  # "bpe"/"wordpiece": trained on these rows
                self.tokenizers[name] = tokens.tokenizer
            sources[name] = tokens
        if self.numeric:
            for name in self.numeric:
                check_present(table, name, "numeric", rows, on_error)
            if self.structure == "dict":
                sources.update(self._numeric_each(table, rows, on_error))
            else:
                columns = TableColumns(table, self.numeric, rows)  # read one at a time
                numbers = NumericColumns(
                    columns, standardizer=self.standardizer, on_error=on_error, rows=rows
                )
                self.standardizer = numbers.standardizer
                sources[" numeric"] = numbers  # not a column name: tuple position only
        for name in self.categorical:
            values = table.column(name, "categorical", keep=False)[rows]
            column = CategoricalColumn(
                values,
                lookup=self.categories.get(name),
                column=name,
                max_categories=self.max_categories,
                rows=rows,
            )
            self.categories[name] = column.lookup
            sources[name] = column
        if self.structure == "dict":
            return sources
        values = list(sources.values())
        return values[0] if len(values) == 1 else tuple(values)

    def _images(
        self,
        table: Table,
        name: str,
        rows: np.ndarray,
        root: str | None,
        on_error: OnError,
        augment: ImageAugmentation | None,
        allow_outside_root: bool,
        cache: Any,
        cache_validation: CacheValidation,
    ) -> Any:
        assert self.image_size is not None
        folder = root if root is not None else (table.folder or os.getcwd())
        options: dict[str, Any] = {
            "root": folder,
            "allow_outside_root": allow_outside_root,
            "color_mode": self.color_mode,
            "value_range": self.value_range,
            "augment": augment,
            "on_error": on_error,
            "rows": rows,
            "column": name,
            "storage_options": table.storage.storage_options if table.storage else None,
            # Several image columns: each its own cache folder (a cache holds one source's),
            # named by the column quoted, so that no column name leaves the cache.
            "cache": (
                cache
                if cache is None or len(self.images) == 1
                else os.path.join(cache, "image-" + urllib.parse.quote(name, safe=""))
            ),
            "cache_validation": cache_validation,
        }
        stored = table.images(name)
        if stored is None:  # a column of paths
            paths = [_path(p) for p in table.column(name, "image")[rows]]
            return ImageFiles(paths, self.image_size, **options)
        return ImageBytes(stored, self.image_size, **options)  # read a batch at a time

    def _fit_shared_vocabulary(
        self, table: Table, rows: np.ndarray, tokenizer: Any, max_tokens: int | None
    ) -> None:
        """With ``shared_vocabulary``: one vocabulary (or trained tokenizer) fitted on the
        training rows of every text column, then given to each."""
        if not self.shared_vocabulary or self.vocabularies or self.tokenizers:
            return
        if tokenizer is not None and not isinstance(tokenizer, str):
            self.tokenizers = dict.fromkeys(self.texts, tokenizer)
            return
        texts = joined_chunks([table.text_chunks(name, rows) for name in self.texts])
        vocabulary, trained, _ = fit_texts(DecodedChunks(texts), None, tokenizer, max_tokens)
        if trained is not None:
            self.tokenizers = dict.fromkeys(self.texts, trained)
        else:
            assert vocabulary is not None
            self.vocabularies = dict.fromkeys(self.texts, vocabulary)

    def _numeric_each(
        self, table: Table, rows: np.ndarray, on_error: OnError
    ) -> dict[str, NumericColumns]:
        """One ``(n, 1)`` input per numeric column (dict inputs), standardised with the
        columns' statistics, fitted here where not given."""
        out: dict[str, NumericColumns] = {}
        fitted = self.standardizer
        for j, name in enumerate(self.numeric):
            one = (
                None
                if fitted is None
                else Standardizer((name,), (fitted.mean[j],), (fitted.std[j],))
            )
            columns = TableColumns(table, (name,), rows)
            out[name] = NumericColumns(columns, standardizer=one, on_error=on_error, rows=rows)
        if fitted is None:
            parts = [out[name].standardizer for name in self.numeric]
            self.standardizer = Standardizer(
                self.numeric, tuple(p.mean[0] for p in parts), tuple(p.std[0] for p in parts)
            )
        return out

    def target_arrays(self, table: Table, rows: np.ndarray) -> Any:
        """The targets of ``rows``: one array (class ids ``int32``, floats, or multi-hot
        rows), or several as a tuple (dict with ``structure="dict"``).

        Raises:
            SampleError: For a missing target, an unseen class, or a value that does not
                fit the target kind. Targets are never replaced.
        """
        if any(self.target_kinds.get(t) is None for t in self.targets):
            self.fit_targets(table)
        arrays = {name: self.target_values(table, name, rows) for name in self.targets}
        if len(arrays) == 1:
            return arrays[self.targets[0]]
        return arrays if self.structure == "dict" else tuple(arrays.values())

    def target_values(self, table: Table, name: str, rows: np.ndarray) -> np.ndarray:
        """Target ``name``'s values at ``rows`` (see `targets`)."""
        kind = self.target_kinds[name]
        assert kind is not None
        check_present(table, name, "target", rows, "raise")
        values = table.column(name, "target")[rows]
        classes = self.target_classes.get(name)
        if kind == "multi_label":
            assert classes is not None
            return encode_multi_label(values, rows, name, classes)
        return encode_targets(values, rows, name, kind, classes)

    def fit_targets(self, table: Table) -> None:
        """Decides each target's kind (unless given) and class names from every row."""
        for name in self.targets:
            values = table.column(name, "target")
            given = self.target_kinds.get(name)
            names = table.class_names(name)
            if is_list_column(values):
                if given not in (None, "multi_label"):
                    raise ValueError(
                        f"Target column {name!r} holds a list per row (a multi-label "
                        f"target), which target_kind={given!r} cannot read; a list is "
                        "never turned into a string. Pass target_kind='multi_label' (or "
                        "leave it out), or give one value per row."
                    )
                self.target_kinds[name] = "multi_label"
                self.target_classes[name] = fit_multi_label(values, name, names)
                continue
            if given == "multi_label":
                raise ValueError(
                    f"target_kind='multi_label' needs a list of class names or ids per row, "
                    f"but target column {name!r} holds one value per row."
                )
            kind, classes = fit_target(values, name, given, names)
            self.target_kinds[name] = kind
            if classes is not None:
                self.target_classes[name] = classes

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
        the rows, whether or not the table has the target columns. Targets are included
        when it has them all; otherwise the dataset is for inference (inputs only).
        Categories not seen when fitting get id 0 (reported, never an error).

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
        unfitted = [
            name
            for name in self.texts
            if name not in self.vocabularies and name not in self.tokenizers
        ]
        if self.numeric and self.standardizer is None:
            unfitted += list(self.numeric)
        unfitted += [name for name in self.categorical if name not in self.categories]
        if unfitted:
            raise ValueError(
                f"This preprocessing has not been fitted yet (columns {unfitted!r} have no "
                "vocabulary, statistics or categories), so new rows would be read by their "
                "own. Use the one from `from_table(...)` (train.preprocessing) or "
                "TablePreprocessing.load."
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
        if self.targets and all(t in data.names for t in self.targets):
            targets = self.target_arrays(data, rows)
        dataset_kwargs.setdefault("shuffle", False)
        return TableDataset(inputs, targets, preprocessing=self, **dataset_kwargs)

    # ---------------------------------------------------------------------- saving/loading

    def _fields(self) -> dict[str, Any]:
        tokenizers = {}
        for name, tokenizer in self.tokenizers.items():
            if not hasattr(tokenizer, "to_str"):
                raise ValueError(
                    "This preprocessing uses a custom tokenizer callable, which cannot be "
                    "saved. Save your tokenizer yourself, or use a Hugging Face "
                    "tokenizers.Tokenizer (saved with it) or the built-in vocabulary."
                )
            tokenizers[name] = tokenizer.to_str()
        return {
            "images": list(self.images),
            "texts": list(self.texts),
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "targets": list(self.targets),
            "structure": self.structure,
            "image_size": list(self.image_size) if self.image_size else None,
            "text_length": self.text_length,
            "text_buckets": list(self.text_buckets) if self.text_buckets else None,
            "color_mode": self.color_mode,
            "value_range": list(self.value_range),
            "shared_vocabulary": self.shared_vocabulary,
            "vocabularies": {k: v.to_dict() for k, v in self.vocabularies.items()},
            "tokenizers": tokenizers,
            "standardizer": self.standardizer.to_dict() if self.standardizer else None,
            "categories": {k: v.to_dict() for k, v in self.categories.items()},
            "max_categories": self.max_categories,
            "target_kinds": dict(self.target_kinds),
            "target_classes": dict(self.target_classes),
        }

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> TablePreprocessing:
        if data.get("version", 1) == 1:
            data = _from_version_1(data)
        tokenizers: dict[str, Any] = {}
        if data["tokenizers"]:
            module = optional_import("tokenizers", "Loading a Hugging Face tokenizer")
            loaded: dict[str, Any] = {}  # a shared tokenizer stays one object
            for name, text in data["tokenizers"].items():
                tokenizers[name] = loaded.setdefault(text, module.Tokenizer.from_str(text))
        vocabularies: dict[str, Vocabulary] = {}
        by_tokens: dict[tuple[str, ...], Vocabulary] = {}  # a shared one stays one object
        for name, saved in data["vocabularies"].items():
            vocabulary = Vocabulary.from_dict(saved)
            vocabularies[name] = by_tokens.setdefault(tuple(vocabulary.tokens), vocabulary)
        standardizer = data.get("standardizer")
        return cls(
            images=tuple(data["images"]),
            texts=tuple(data["texts"]),
            numeric=tuple(data["numeric"]),
            categorical=tuple(data["categorical"]),
            targets=tuple(data["targets"]),
            structure=data["structure"],
            image_size=tuple(data["image_size"]) if data["image_size"] else None,
            text_length=data["text_length"],
            text_buckets=tuple(data["text_buckets"]) if data.get("text_buckets") else None,
            color_mode=data["color_mode"],
            value_range=(float(data["value_range"][0]), float(data["value_range"][1])),
            shared_vocabulary=bool(data["shared_vocabulary"]),
            vocabularies=vocabularies,
            tokenizers=tokenizers,
            standardizer=Standardizer.from_dict(standardizer) if standardizer else None,
            categories={k: CategoryLookup.from_dict(v) for k, v in data["categories"].items()},
            max_categories=data["max_categories"],
            target_kinds=dict(data["target_kinds"]),
            target_classes={k: list(v) for k, v in data["target_classes"].items()},
        )


def _from_version_1(data: Mapping[str, Any]) -> dict[str, Any]:
    """A version 1 file (one image, text and target column) in version 2's fields."""
    text, target = data.get("text"), data.get("target")

    def by_text(value: Any) -> dict[str, Any]:
        return {text: value} if text is not None and value is not None else {}

    return {
        "images": [data["image"]] if data.get("image") else [],
        "texts": [text] if text is not None else [],
        "numeric": list(data.get("numeric", [])),
        "categorical": [],
        "targets": [target] if target is not None else [],
        "structure": "tuple",
        "image_size": data.get("image_size"),
        "text_length": data.get("text_length"),
        "text_buckets": data.get("text_buckets"),
        "color_mode": data.get("color_mode", "rgb"),
        "value_range": [0.0, 1.0],
        "shared_vocabulary": False,
        "vocabularies": by_text(data.get("vocabulary")),
        "tokenizers": by_text(data.get("tokenizer")),
        "standardizer": data.get("standardizer"),
        "categories": {},
        "max_categories": None,
        "target_kinds": {target: data.get("target_kind")} if target is not None else {},
        "target_classes": (
            {target: data["classes"]}
            if target is not None and data.get("classes") is not None
            else {}
        ),
    }


def _only(columns: tuple[str, ...], name: str) -> str | None:
    if len(columns) > 1:
        raise ValueError(f"There are several: {list(columns)!r}; use preprocessing.{name}.")
    return columns[0] if columns else None


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
        check_numeric_column(values, name, self.table.name)
        return values

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def check_numeric_column(values: np.ndarray, name: str, where: str) -> None:
    """Refuses a numeric column of dates or times, or of lists, naming it and the fix
    (looked at by dtype, or by the first cell that has a value)."""
    array = np.asarray(values)
    first = array.reshape(-1)[0] if array.size else None
    if array.dtype == object:
        first = next((v for v in array if v is not None), None)
    if array.dtype.kind in "mM" or isinstance(
        first, (datetime.date, datetime.time, datetime.timedelta, np.datetime64, np.timedelta64)
    ):
        what = array.dtype if array.dtype.kind in "mM" else type(first).__name__
        raise ValueError(temporal_error(name, f" of {where} holds {what}"))
    if isinstance(first, (list, tuple, np.ndarray, dict)):
        raise ValueError(
            f"numeric={name!r}: column {name!r} of {where} holds {type(first).__name__}s "
            f"({first!r}), not one number per row. Split it into one column per number, "
            "or read it with your own Source."
        )


def _path(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else str(value)


def joined_chunks(parts: Sequence[TextChunks]) -> TextChunks:
    """Several columns' texts as one `TextChunks`, one after the other (to fit one
    vocabulary on them all)."""
    starts = np.cumsum([0, *(len(p) for p in parts)])

    def chunks() -> Iterator[Chunk]:
        for start, part in zip(starts, parts, strict=False):
            for positions, values in part:
                yield positions + start, values

    return TextChunks(int(starts[-1]), chunks)


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

    def _class_names(self) -> list[list[Any] | None]:
        return [self.preprocessing.target_classes.get(t) for t in self.preprocessing.targets]
