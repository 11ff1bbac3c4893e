"""`from_table`: a table of images (paths or encoded bytes), captions and numbers to
training and validation datasets in one call, with preprocessing fitted on the training rows.

The table may be a CSV file, Parquet or Arrow files, a data frame, a pyarrow Table or a
Hugging Face dataset (see ``reading``). Image paths are read with `ImageFiles`, image bytes
with `ImageBytes`, captions with `TextTokens`, numeric columns with `NumericColumns`, and
the target column becomes class ids (or float targets). What was fitted is a
`TablePreprocessing`, exposed as ``train.preprocessing``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from multimodal_dataset.sources.categorical import check_max_categories
from multimodal_dataset.sources.images.augmentation import ImageAugmentation
from multimodal_dataset.sources.images.decoded_cache import CacheValidation
from multimodal_dataset.sources.images.decoding import ColorMode
from multimodal_dataset.sources.images.encoded import check_value_range
from multimodal_dataset.sources.protocol import OnError, check_on_error
from multimodal_dataset.tables.preprocessing import (
    STRUCTURES,
    Structure,
    TableDataset,
    TablePreprocessing,
)
from multimodal_dataset.tables.reading import read_table
from multimodal_dataset.tables.targets import check_target_kind

#: One column name, or a list of them.
Columns = str | Sequence[str] | None

_SPLIT_STREAM = 0x5B117  # keeps the split's random stream apart from the shuffle's


def from_table(
    table: Any,
    *,
    image: Columns = None,
    text: Columns = None,
    numeric: Columns = None,
    categorical: Columns = None,
    target: Columns = None,
    image_size: tuple[int, int] | None = None,
    text_length: int | None = None,
    validation: Any = None,
    validation_split: float | None = None,
    seed: int = 0,
    inputs: Structure = "tuple",
    stratify: bool | str = False,
    shared_vocabulary: bool = False,
    max_categories: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    text_buckets: Sequence[int] | None = None,
    root: str | os.PathLike[str] | None = None,
    color_mode: ColorMode = "rgb",
    max_tokens: int | None = None,
    tokenizer: Any = None,
    augment: ImageAugmentation | None = None,
    on_error: OnError = "raise",
    target_kind: str | Mapping[str, str] | None = None,
    allow_outside_root: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    cache_validation: CacheValidation = "run",
    **dataset_kwargs: Any,
) -> tuple[TableDataset, TableDataset | None]:
    """Training and validation datasets from a table of images, texts, numbers and
    categories.

    Rows are split by ``seed`` into training and validation rows (``stratify=True``: the
    class proportions kept), or the validation rows come from their own table
    (``validation=``, a predefined split); the vocabularies, the numeric statistics and
    the categories are fitted on the training rows only and applied to both. Each input
    argument takes one column or a list of them. Batches are ``(inputs, targets)``:

    - ``inputs="tuple"`` (the default): ``(images..., texts..., numeric, categorical...)``
      by position, the numeric columns one ``(n, k)`` array, each categorical column an
      ``(n, 1)`` array of ids; a single input is not wrapped in a tuple, so one column of
      each kind gives ``((image, text, numeric), target)``.
    - ``inputs="dict"``: ``{column: array}``, one ``keras.Input(name=column)`` per column,
      each numeric column its own ``(n, 1)`` input; several targets keyed by column too.

    Several targets (``target=["label", "score"]``, a model with two outputs) come as a
    tuple ``(y1, y2)`` (a dict with ``inputs="dict"``), each with its own kind.

    Example:

    ```python
    train, val = from_table(
        "data/manifest.csv", image="image", text="caption",
        numeric=["width", "height"], target="label",
        image_size=(64, 64), text_length=20, batch_size=32,
    )
    model.fit(train, validation_data=val, epochs=5)
    train.preprocessing.save("preprocessing.json")

    # One named keras.Input per column, two images and two texts sharing a vocabulary:
    train, val = from_table(
        "pairs.parquet", image=["image_1", "image_2"], text=["text_1", "text_2"],
        categorical=["source"], target="label", inputs="dict", shared_vocabulary=True,
        stratify=True, image_size=(128, 128), text_length=32, batch_size=32,
    )
    ```

    Args:
        table: A ``.csv``/``.tsv`` file; a ``.parquet``, ``.arrow`` or ``.feather`` file, a
            folder, a glob (``"data/train-*.parquet"``) or a list of such files, read as
            one table in file order (sorted for a folder or a glob); a pandas DataFrame; a
            pyarrow Table; or a Hugging Face ``datasets.Dataset`` (one split of a
            ``DatasetDict``).
        image: Column(s) of images: file paths, relative to the table's folder (or
            ``root``); encoded bytes; or ``{bytes, path}`` structs (the Hugging Face
            ``datasets.Image()`` storage: bytes win, null bytes fall back to the path).
            Bytes are read a batch at a time, never all into memory.
        text: Column(s) of raw texts, each with its own vocabulary unless
            ``shared_vocabulary``.
        numeric: Column(s) of numbers, standardised with training statistics. A date or
            time column is refused: convert it into numbers first.
        categorical: Column(s) of categories (strings or integers), each to ``int32`` ids
            fitted on the training rows, most frequent first from 1; 0 for a missing value
            or one not seen when fitting (reported in the epoch's report, never an error,
            at inference too). ``preprocessing.categories[column].num_ids`` is the
            ``input_dim`` of an ``Embedding``.
        target: Column(s) of targets: integers (class ids), floats (regression), names
            (class ids in sorted order, kept in ``preprocessing.classes``), or a list of
            class names or ids per row (multi-label: multi-hot rows). A Hugging Face
            ``ClassLabel`` keeps its names as the classes. None for an inference-only
            table.
        image_size: ``(height, width)`` of the decoded images (required with ``image``).
        text_length: Token ids per text (with ``text``, this or ``text_buckets``).
        text_buckets: Instead of ``text_length``: the lengths a batch of texts may be
            padded to, e.g. ``(16, 32, 64, 128)`` (see `TextTokens`); the text input is
            then ``keras.Input((None,), dtype="int32")``. Pass ``group_by_length=True``
            too (a `MultimodalDataset` argument) to batch texts of similar length.
        validation: A table of validation rows, in any form ``table`` may take (a
            predefined split). Then ``validation_split`` must not be given.
        validation_split: Fraction of rows for validation (``int(fraction * rows)``, as in
            Keras); default 0.2, or 0 with ``validation``; 0 for no validation dataset
            (then the second value is None).
        seed: Seed of the split and, unless ``dataset_kwargs`` has one, of the shuffle.
        inputs: ``"tuple"`` (inputs by position) or ``"dict"`` (keyed by column name);
            see above.
        stratify: With ``validation_split``: keep each class's share in both splits (each
            class split by ``int``-rounded fractions, the remainder to the classes with
            the largest remainders, so the validation rows still number
            ``int(fraction * rows)``); a pure function of ``seed``. True stratifies by the
            (first) target, or name a class target column.
        shared_vocabulary: Fit one vocabulary (or one ``tokenizer="bpe"``) on every text
            column's training rows and use it for all (one ``Embedding`` for all texts).
        max_categories: The most ids a categorical column may have, id 0 included (the
            ``Embedding``'s ``input_dim``). With more categories in the training rows, the
            most frequent are kept and the others get id 0, with a
            `CategoryOverflowWarning` saying how many rows that concerns; those rows are
            then counted in every epoch's report. None keeps every category.
        value_range: The range image values are scaled to: ``(0, 1)`` (the default),
            ``(0, 255)`` (what ``keras.applications.*.preprocess_input`` expects) or
            ``(-1, 1)``; see `ImageFiles`.
        root: Folder for relative image paths, instead of the table's folder (the working
            directory for an in-memory table). Paths may not leave it: absolute paths
            elsewhere and ``..`` escapes are bad samples, unless ``allow_outside_root``.
        color_mode: ``"rgb"``, ``"grayscale"`` or ``"rgba"``.
        max_tokens: Vocabulary size (padding and unknown included); None keeps all words.
        tokenizer: Instead of the word vocabulary: ``"bpe"`` to train a Hugging Face
            byte-pair subword tokenizer of ``max_tokens`` ids on the training rows
            (saved with the preprocessing), or your own callable or Hugging Face tokenizer.
        augment: An `ImageAugmentation` for the training images (never validation).
        on_error: ``"raise"`` at the first bad file or value, naming the row and column;
            ``"replace"`` to fill bad inputs (zero image, empty text, mean value) and
            report them at the end of each epoch. Targets are never replaced.
        target_kind: ``"int"`` (class ids), ``"float"`` (regression), ``"classes"``
            (every value a class name, numbers too: ``1, 2, 10`` are ordered as numbers)
            or ``"multi_label"`` (a list of class names or ids per row, as multi-hot
            ``floatx`` rows; the classes in ``preprocessing.target_classes``). One kind for
            every target, or a dict by target column. None infers it from the whole
            column (a list per row is multi-label), and refuses a column that mixes
            numbers with other values (naming the rows) instead of guessing.
        allow_outside_root: Read image paths that leave ``root`` (absolute paths, ``..``).
            A table is data that may come from elsewhere; pass True only if you trust it.
        cache_dir: Where image columns of Parquet (and compressed Arrow) files are
            converted, once per file, to memory-mapped Arrow for random access (default
            ``$MULTIMODAL_DATASET_CACHE`` or ``~/.cache/multimodal_dataset``).
        storage_options: Options of the file system that reads URLs (``s3://``,
            ``gs://``, ``http(s)://``...), as in pandas: credentials, ``endpoint_url``.
            Any path (the table, its files, ``root``, the image paths in it) may be a URL;
            relative image paths are relative to the table's URL.
        cache: A directory where each decoded, resized, un-augmented image is kept the
            first time it is read, memory-mapped, so later epochs and runs skip decoding
            (see `ImageFiles`); augmentation still draws anew each epoch. The token ids
            (and the vocabulary fitted on the training rows) are kept there too, so a
            later run skips tokenizing (see `TextTokens`). The training and validation
            rows are cached apart. ``multimodal-dataset cache`` fills it ahead of
            training with every core. None (the default): no cache.
        cache_validation: How a cached image is checked against its original:
            ``"run"`` (the default: each original's identity once per run), ``"epoch"``
            (once per epoch: a file rewritten during training is decoded again) or
            ``"trust"`` (filled records served without touching the originals, for
            originals offline or remote after ``multimodal-dataset cache`` filled it).
        **dataset_kwargs: Passed to the training `MultimodalDataset` (``batch_size``,
            ``workers``, ...). The validation dataset gets the same ``batch_size``,
            ``workers`` and ``use_multiprocessing``, and keeps every row in order.

    Returns:
        ``(train, validation)``; both have ``.preprocessing``, the fitted
        `TablePreprocessing`.

    Raises:
        KeyError: For a column the table does not have, listing the columns it has.
        SampleError: For a bad file or value (``on_error="raise"``) or a missing target.
        ValueError: For a column given twice, a split that leaves no training or no
            validation rows, files whose columns differ, ``validation`` with
            ``validation_split``, or a numeric column of dates or lists.
        FileNotFoundError: For a glob that matches no file, naming the pattern.
    """
    data = read_table(table, cache_dir, storage_options)
    roles = {
        "image": _columns(image, "image"),
        "text": _columns(text, "text"),
        "numeric": _columns(numeric, "numeric"),
        "categorical": _columns(categorical, "categorical"),
        "target": _columns(target, "target"),
    }
    _check_roles(roles, data)
    if inputs not in STRUCTURES:
        raise ValueError(
            f"inputs must be 'tuple' (inputs by position) or 'dict' (keyed by column name, "
            f"one keras.Input(name=column) each); got {inputs!r}."
        )
    if roles["image"] and image_size is None:
        raise ValueError("image_size=(height, width) is required with image=.")
    if roles["text"] and text_length is None and text_buckets is None:
        raise ValueError(
            "text= needs text_length= (token ids per text) or text_buckets= (lengths a "
            "batch may be padded to, e.g. (16, 32, 64, 128))."
        )
    on_error = check_on_error(on_error)
    check_max_categories(max_categories)
    kinds = check_target_kind(target_kind, roles["target"])
    preprocessing = TablePreprocessing(
        images=roles["image"],
        texts=roles["text"],
        numeric=roles["numeric"],
        categorical=roles["categorical"],
        targets=roles["target"],
        structure=inputs,
        image_size=None if image_size is None else (int(image_size[0]), int(image_size[1])),
        text_length=text_length,
        text_buckets=None if text_buckets is None else tuple(text_buckets),
        color_mode=color_mode,
        value_range=check_value_range(value_range, np.dtype(np.float32)),
        shared_vocabulary=bool(shared_vocabulary),
        max_categories=max_categories,
        target_kinds=kinds,
    )
    if roles["target"]:
        preprocessing.fit_targets(data)
    val_data = None
    if validation is not None:
        if validation_split:
            raise ValueError(
                "Pass either validation= (a table of validation rows) or validation_split= "
                f"(a fraction of this table's rows), not both; got validation_split="
                f"{validation_split!r}."
            )
        if stratify:
            raise ValueError(
                "stratify= shapes the split of validation_split=; with validation= (a "
                "table of validation rows) there is no split to stratify. Leave one out."
            )
        val_data = read_table(validation, cache_dir, storage_options)
        if len(val_data) == 0:
            raise ValueError(f"validation: {val_data.name} has no rows.")
        train_rows, val_rows = split_rows(len(data), 0.0, seed)[0], np.arange(len(val_data))
    else:
        split = 0.2 if validation_split is None else validation_split
        strata = _strata(preprocessing, data, stratify)
        train_rows, val_rows = split_rows(len(data), split, seed, strata)
    folder = os.fspath(root) if root is not None else None

    def make(
        table_: Any, rows: np.ndarray, augment_: ImageAugmentation | None, **kwargs: Any
    ) -> Any:
        sources = preprocessing.inputs(
            table_,
            rows,
            root=folder,
            on_error=on_error,
            augment=augment_,
            max_tokens=max_tokens,
            allow_outside_root=allow_outside_root,
            cache=cache,
            cache_validation=cache_validation,
            tokenizer=tokenizer,
        )
        targets = preprocessing.target_arrays(table_, rows) if roles["target"] else None
        return TableDataset(sources, targets, preprocessing=preprocessing, **kwargs)

    dataset_kwargs.setdefault("seed", seed)
    train = make(data, train_rows, augment, **dataset_kwargs)
    validation = None
    if len(val_rows):
        keep = ("batch_size", "workers", "use_multiprocessing", "max_queue_size", "seed")
        val_kwargs = {k: v for k, v in dataset_kwargs.items() if k in keep}
        validation = make(
            data if val_data is None else val_data, val_rows, None, shuffle=False, **val_kwargs
        )
    _release_arrow_memory()
    return train, validation


def _columns(value: Columns, role: str) -> tuple[str, ...]:
    """One column name or a list of them, as a tuple.

    Raises:
        TypeError: For anything but strings.
    """
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else tuple(value)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(
            f"{role}= takes a column name or a list of column names; got {bad[0]!r} "
            f"({type(bad[0]).__name__})."
        )
    return names


def _check_roles(roles: Mapping[str, tuple[str, ...]], data: Any) -> None:
    """Every column exists and is given once, and there is an input.

    Raises:
        KeyError: For a column the table does not have (named, with the columns it has).
        ValueError: For no input column, or a column given twice (in one list or as two
            kinds).
    """
    if not any(roles[r] for r in ("image", "text", "numeric", "categorical")):
        raise ValueError(
            "from_table needs at least one input column: image=, text=, numeric= or "
            f"categorical=. The table's columns are: {', '.join(map(repr, data.names))}."
        )
    given: dict[str, list[str]] = {}
    for role, names in roles.items():
        for name in names:
            given.setdefault(name, []).append(f"{role}=")
    twice = {name: where for name, where in given.items() if len(where) > 1}
    if twice:
        shown = "; ".join(
            f"{name!r} as {' and as '.join(where)}"
            if len(set(where)) > 1
            else f"{name!r} {len(where)} times in {where[0]}"
            for name, where in twice.items()
        )
        raise ValueError(
            f"A column may be given once: {shown}. Each column is one input (or target) "
            "of one kind; copy the column in the table if the model needs it twice."
        )
    for role, names in roles.items():
        for name in names:
            data.check_column(name, role)


def _strata(preprocessing: TablePreprocessing, data: Any, stratify: bool | str) -> Any:
    """The class id of every row to stratify the split by, or None."""
    if stratify is False or stratify is None:
        return None
    targets = preprocessing.targets
    if not targets:
        raise ValueError("stratify= needs target=: the split keeps the targets' class shares.")
    name = targets[0] if stratify is True else stratify
    if name not in targets:
        raise ValueError(
            f"stratify={stratify!r} names no target; give True (the first target) or one of "
            f"{list(targets)!r}."
        )
    kind = preprocessing.target_kinds[name]
    if kind not in ("int", "classes"):
        raise ValueError(
            f"stratify needs a target of classes, but target {name!r} is {kind!r}: "
            "stratify by a class target, or leave stratify out."
        )
    return preprocessing.target_values(data, name, np.arange(len(data)))


def _release_arrow_memory() -> None:
    """Gives back to the system what Arrow's memory pool kept of the columns read while
    building (it keeps freed memory for reuse): tens of bytes per row of a large table."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()


def split_rows(
    num_rows: int, validation_split: float, seed: int, strata: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row numbers (each sorted, ``int32`` below 2**31 rows), a
    pure function of the seed.

    With ``strata`` (a class id per row), each class gives ``validation_split`` of its
    rows, rounded down, and the rows left over of the ``int(validation_split * rows)``
    go one each to the classes with the largest remainders (ties: the smaller id).
    """
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
    if num_rows <= np.iinfo(np.int32).max:
        order = order.astype(np.int32)  # 4 bytes per row, shared by the table's sources
    if strata is None or num_val == 0:
        return np.sort(order[num_val:]), np.sort(order[:num_val])
    classes, labels = np.unique(np.asarray(strata)[order], return_inverse=True)
    sizes = np.bincount(labels, minlength=len(classes))
    exact = sizes * (num_val / num_rows)
    quota = np.floor(exact).astype(np.int64)
    left = num_val - int(quota.sum())
    quota[np.lexsort((np.arange(len(classes)), -(exact - quota)))[:left]] += 1
    # Each class's rows in the shuffled order; the first `quota` of each go to validation.
    grouped = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(num_rows, np.int64)
    rank[grouped] = np.arange(num_rows) - np.repeat(starts, sizes)
    is_val = rank < quota[labels]
    return np.sort(order[~is_val]), np.sort(order[is_val])


def from_webdataset(
    shards: Any,
    *,
    image: Columns = None,
    text: Columns = None,
    numeric: Columns = None,
    categorical: Columns = None,
    target: Columns = None,
    image_size: tuple[int, int] | None = None,
    text_length: int | None = None,
    validation: Any = None,
    validation_split: float | None = None,
    seed: int = 0,
    value_range: tuple[float, float] = (0.0, 1.0),
    cache_dir: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **dataset_kwargs: Any,
) -> tuple[TableDataset, TableDataset | None]:
    """Training and validation datasets from WebDataset tar shards, with exact epochs.

    A sample is the members sharing a key (``000123.jpg``, ``000123.txt``,
    ``000123.json``, ``000123.cls``). Each shard is indexed once (member offsets from the
    tar headers, kept in ``cache_dir``) and members are read by offset, so samples are
    shuffled per sample, exactly once per epoch, as a pure function of ``(seed, epoch)``,
    and sharded per process as every other source is. Everything else is `from_table`'s:
    the fitted, saveable ``train.preprocessing``, ``on_error``, workers.

    Example:

    ```python
    train, val = from_webdataset(
        "shards/{00000..00009}.tar", image="jpg", text="txt",
        numeric=["json.width", "json.similarity"], target="cls",
        image_size=(64, 64), text_length=32, batch_size=32,
    )
    ```

    Args:
        shards: A list of ``.tar`` files, a glob (``"shards/*.tar"``), WebDataset's brace
            notation (``"shards/{00000..00099}.tar"``), or a folder of shards.
        image: The image member's extension (``"jpg"``, ``"png"``, ``"webp"``...), or
            alternatives ``"jpg;png"`` (the first a sample has); a list for several.
        text: The text member's extension, e.g. ``"txt"`` (a list for several).
        numeric: Numeric inputs: member extensions, or fields of a JSON member
            (``"json.width"``, nested ``"json.exif.iso"``).
        categorical: Categorical inputs: member extensions or JSON fields (see
            `from_table`).
        target: The target member's extension (``"cls"``) or a JSON field (or a list:
            several targets).
        image_size: As in `from_table`.
        text_length: As in `from_table`.
        validation: Shards of validation samples (a predefined split), in any form
            ``shards`` may take.
        validation_split: Fraction of samples for validation (default 0.2, or 0 with
            ``validation``).
        seed: Seed of the split and of the shuffle.
        value_range: The range image values are scaled to: ``(0, 1)``, ``(0, 255)`` or
            ``(-1, 1)`` (see `from_table`).
        cache_dir: Where shard indexes are kept (see `from_table`).
        storage_options: Options of the file system that reads shards that are URLs
            (``"s3://bucket/shards/{00000..00099}.tar"``), as in pandas: credentials,
            ``endpoint_url``. A batch's members are fetched concurrently by byte range.
        **dataset_kwargs: `from_table`'s other arguments (``on_error``, ``augment``,
            ``max_tokens``, ``cache``, ``cache_validation``...) and `MultimodalDataset`'s
            (``batch_size``, ``workers``...).

    Returns:
        ``(train, validation)``, as `from_table` returns them.

    Raises:
        ValueError: For a compressed, truncated or corrupt shard, or a duplicate key,
            naming the shard and the member.
        SampleError: For a sample without a requested member or JSON field, naming its
            key, shard and member (``on_error="raise"``), or a bad image.
        FileNotFoundError: For a glob or brace pattern that names no (or missing) files.
    """
    return from_table(
        read_table(shards, cache_dir, storage_options),
        image=image,
        text=text,
        numeric=numeric,
        categorical=categorical,
        target=target,
        image_size=image_size,
        text_length=text_length,
        validation=(
            None if validation is None else read_table(validation, cache_dir, storage_options)
        ),
        validation_split=validation_split,
        seed=seed,
        value_range=value_range,
        cache_dir=cache_dir,
        storage_options=storage_options,
        **dataset_kwargs,
    )
