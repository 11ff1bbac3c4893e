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

from multimodal_dataset.sources.images.augmentation import ImageAugmentation
from multimodal_dataset.sources.images.decoded_cache import CacheValidation
from multimodal_dataset.sources.images.decoding import ColorMode
from multimodal_dataset.sources.protocol import OnError, check_on_error
from multimodal_dataset.tables.preprocessing import TableDataset, TablePreprocessing
from multimodal_dataset.tables.reading import read_table
from multimodal_dataset.tables.targets import check_target_kind

_SPLIT_STREAM = 0x5B117  # keeps the split's random stream apart from the shuffle's


def from_table(
    table: Any,
    *,
    image: str | None = None,
    text: str | None = None,
    numeric: str | Sequence[str] = (),
    target: str | None = None,
    image_size: tuple[int, int] | None = None,
    text_length: int | None = None,
    validation: Any = None,
    validation_split: float | None = None,
    seed: int = 0,
    text_buckets: Sequence[int] | None = None,
    root: str | os.PathLike[str] | None = None,
    color_mode: ColorMode = "rgb",
    max_tokens: int | None = None,
    tokenizer: Any = None,
    augment: ImageAugmentation | None = None,
    on_error: OnError = "raise",
    target_kind: str | None = None,
    allow_outside_root: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    cache_validation: CacheValidation = "run",
    **dataset_kwargs: Any,
) -> tuple[TableDataset, TableDataset | None]:
    """Training and validation datasets from a table of images, texts and numbers.

    Rows are split by ``seed`` into training and validation rows, or the validation rows
    come from their own table (``validation=``, a predefined split); the vocabulary, the
    numeric statistics and the class names are fitted on the training rows only and
    applied to both. Batches
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

    # Hugging Face-style Parquet shards with embedded images and a predefined split:
    train, val = from_table(
        "data/train-*.parquet", validation="data/validation-*.parquet",
        image="image", text="text", target="label",
        image_size=(64, 64), text_length=32, batch_size=32,
    )
    ```

    Args:
        table: A ``.csv``/``.tsv`` file; a ``.parquet``, ``.arrow`` or ``.feather`` file, a
            folder, a glob (``"data/train-*.parquet"``) or a list of such files, read as
            one table in file order (sorted for a folder or a glob); a pandas DataFrame; a
            pyarrow Table; or a Hugging Face ``datasets.Dataset`` (one split of a
            ``DatasetDict``).
        image: Column of images: file paths, relative to the table's folder (or
            ``root``); encoded bytes; or ``{bytes, path}`` structs (the Hugging Face
            ``datasets.Image()`` storage: bytes win, null bytes fall back to the path).
            Bytes are read a batch at a time, never all into memory.
        text: Column of raw texts.
        numeric: Column name(s) of numbers, standardised with training statistics.
        target: Column of targets: integers (class ids), floats (regression) or names
            (class ids in sorted order, kept in ``preprocessing.classes``). None for an
            inference-only table.
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
        target_kind: ``"int"`` (class ids), ``"float"`` (regression) or ``"classes"``
            (every value a class name, numbers too: ``1, 2, 10`` are ordered as numbers).
            None infers it from the whole column, and refuses a column that mixes
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
        ValueError: For a split that leaves no training or no validation rows, files
            whose columns differ, or ``validation`` with ``validation_split``.
        FileNotFoundError: For a glob that matches no file, naming the pattern.
    """
    data = read_table(table, cache_dir, storage_options)
    numeric = (numeric,) if isinstance(numeric, str) else tuple(numeric)
    if image is None and text is None and not numeric:
        raise ValueError(
            "from_table needs at least one input column: image=, text= or numeric=. The "
            f"table's columns are: {', '.join(map(repr, data.names))}."
        )
    for role, name in (("image", image), ("text", text), ("target", target)):
        if name is not None:
            data.check_column(name, role)
    for name in numeric:
        data.check_column(name, "numeric")
    if image is not None and image_size is None:
        raise ValueError("image_size=(height, width) is required with image=.")
    if text is not None and text_length is None and text_buckets is None:
        raise ValueError(
            "text= needs text_length= (token ids per text) or text_buckets= (lengths a "
            "batch may be padded to, e.g. (16, 32, 64, 128))."
        )
    on_error = check_on_error(on_error)
    check_target_kind(target_kind, target)
    val_data = None
    if validation is not None:
        if validation_split:
            raise ValueError(
                "Pass either validation= (a table of validation rows) or validation_split= "
                f"(a fraction of this table's rows), not both; got validation_split="
                f"{validation_split!r}."
            )
        val_data = read_table(validation, cache_dir, storage_options)
        if len(val_data) == 0:
            raise ValueError(f"validation: {val_data.name} has no rows.")
        train_rows, val_rows = split_rows(len(data), 0.0, seed)[0], np.arange(len(val_data))
    else:
        split = 0.2 if validation_split is None else validation_split
        train_rows, val_rows = split_rows(len(data), split, seed)
    preprocessing = TablePreprocessing(
        image=image,
        text=text,
        numeric=numeric,
        target=target,
        image_size=None if image_size is None else (int(image_size[0]), int(image_size[1])),
        text_length=text_length,
        text_buckets=None if text_buckets is None else tuple(text_buckets),
        color_mode=color_mode,
        tokenizer=tokenizer,
        target_kind=target_kind,
    )
    folder = os.fspath(root) if root is not None else None

    def make(
        table_: Any, rows: np.ndarray, augment_: ImageAugmentation | None, **kwargs: Any
    ) -> Any:
        inputs = preprocessing.inputs(
            table_,
            rows,
            root=folder,
            on_error=on_error,
            augment=augment_,
            max_tokens=max_tokens,
            allow_outside_root=allow_outside_root,
            cache=cache,
            cache_validation=cache_validation,
        )
        targets = None if target is None else preprocessing.targets(table_, rows)
        return TableDataset(inputs, targets, preprocessing=preprocessing, **kwargs)

    if target is not None:
        preprocessing.fit_target(data)
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


def _release_arrow_memory() -> None:
    """Gives back to the system what Arrow's memory pool kept of the columns read while
    building (it keeps freed memory for reuse): tens of bytes per row of a large table."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()


def split_rows(num_rows: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row numbers (each sorted, ``int32`` below 2**31 rows), a
    pure function of the seed."""
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
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def from_webdataset(
    shards: Any,
    *,
    image: str | None = None,
    text: str | None = None,
    numeric: str | Sequence[str] = (),
    target: str | None = None,
    image_size: tuple[int, int] | None = None,
    text_length: int | None = None,
    validation: Any = None,
    validation_split: float | None = None,
    seed: int = 0,
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
            alternatives ``"jpg;png"`` (the first a sample has).
        text: The text member's extension, e.g. ``"txt"``.
        numeric: Numeric inputs: member extensions, or fields of a JSON member
            (``"json.width"``, nested ``"json.exif.iso"``).
        target: The target member's extension (``"cls"``) or a JSON field.
        image_size: As in `from_table`.
        text_length: As in `from_table`.
        validation: Shards of validation samples (a predefined split), in any form
            ``shards`` may take.
        validation_split: Fraction of samples for validation (default 0.2, or 0 with
            ``validation``).
        seed: Seed of the split and of the shuffle.
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
        target=target,
        image_size=image_size,
        text_length=text_length,
        validation=(
            None if validation is None else read_table(validation, cache_dir, storage_options)
        ),
        validation_split=validation_split,
        seed=seed,
        cache_dir=cache_dir,
        storage_options=storage_options,
        **dataset_kwargs,
    )
