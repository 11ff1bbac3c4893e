"""Command line: ``python -m multimodal_dataset demo``."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multimodal_dataset.example import FORMATS, make_example

TEXT_LENGTH = 20
#: Without --text-length, captions are padded per batch to one of these lengths.
TEXT_BUCKETS = (8, 16, 32)
FORMAT_HELP = (
    "csv: image files and a manifest of their paths; parquet: Hugging Face-style Parquet "
    "shards with the image bytes inside; webdataset: tar shards of jpg/txt/cls/json members"
)


def _demo(args: argparse.Namespace) -> int:
    if args.data is None:
        with tempfile.TemporaryDirectory(prefix="multimodal_example_") as folder:
            print(f"Writing an example dataset of {args.samples} samples to {folder}")
            make_example(folder, args.samples, seed=args.seed, format=args.format)
            return _train(Path(folder), args)
    return _train(Path(args.data), args)


def _train(folder: Path, args: argparse.Namespace) -> int:
    import keras

    from multimodal_dataset import from_table, from_webdataset, models
    from multimodal_dataset.example import (
        IMAGE_COLUMN,
        MANIFEST,
        NUMERIC_COLUMNS,
        PARQUET_FOLDER,
        SHARD_FOLDER,
        TARGET_COLUMN,
        TEXT_COLUMN,
    )

    # A folder from make-example: manifest.csv of image files, data/ of Parquet shards, or
    # shards/ of WebDataset tar shards.
    common: dict[str, Any] = {
        "image_size": (32, 32),
        "validation_split": 0.2,
        "seed": args.seed,
        "batch_size": args.batch_size,
    }
    if args.text_length is None:  # variable length: bucketed, batches of similar length
        common |= {"text_buckets": TEXT_BUCKETS, "group_by_length": True}
    else:
        common["text_length"] = args.text_length
    if (folder / SHARD_FOLDER).is_dir():
        print(f"Training from the WebDataset shards in {folder / SHARD_FOLDER}")
        train, val = from_webdataset(
            folder / SHARD_FOLDER,
            image="jpg",
            text="txt",
            numeric=[f"json.{c}" for c in NUMERIC_COLUMNS],
            target="cls",
            **common,
        )
    else:
        table = folder / MANIFEST if (folder / MANIFEST).exists() else folder / PARQUET_FOLDER
        print(f"Training from {table}")
        train, val = from_table(
            table,
            image=IMAGE_COLUMN,
            text=TEXT_COLUMN,
            numeric=NUMERIC_COLUMNS,
            target=TARGET_COLUMN,
            **common,
        )
    assert val is not None and train.preprocessing is not None
    vocabulary = train.preprocessing.vocabulary
    assert vocabulary is not None
    model = models.build_reference_model(
        text_length=args.text_length, vocab_size=len(vocabulary), seed=args.seed
    )
    train.check(model)
    print(f"Keras {keras.__version__} on the {keras.backend.backend()} backend")
    print(f"train: {train}")
    print(f"validation: {val}")
    history = model.fit(train, validation_data=val, epochs=args.epochs, verbose=args.verbose)
    accuracy = history.history["val_accuracy"][-1]
    labels = np.concatenate([val[i][1] for i in range(len(val))])
    chance = float(np.bincount(labels).max() / len(labels))
    print(f"validation accuracy: {accuracy:.3f} (chance: {chance:.3f})")
    return 0


def _make_example(args: argparse.Namespace) -> int:
    written = make_example(args.directory, args.samples, seed=args.seed, format=args.format)
    if args.format == "csv":
        print(f"Wrote {args.samples} samples: {written} and {written.parent / 'images'}")
    elif args.format == "webdataset":
        shards = sorted(p.name for p in written.iterdir())
        print(f"Wrote {args.samples} samples as WebDataset shards to {written}: {shards}")
    else:
        shards = sorted(p.name for p in written.iterdir())
        print(f"Wrote {args.samples} samples with their JPEG bytes to {written}: {shards}")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from multimodal_dataset import from_table, from_webdataset

    options: dict[str, Any] = {
        "image": args.image,
        "text": args.text,
        "image_size": tuple(args.image_size) if args.image_size else None,
        "color_mode": args.color_mode,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "cache": args.cache,
        "on_error": "replace",  # every bad image is listed below, not only the first
    }
    if args.text is not None:
        if args.text_buckets:
            options["text_buckets"] = tuple(args.text_buckets)
        else:
            options["text_length"] = args.text_length or TEXT_LENGTH
    if args.tokenizer:
        options["tokenizer"] = args.tokenizer
    if args.validation is not None:
        options["validation"] = args.validation
    else:
        options["validation_split"] = args.validation_split
    if args.webdataset:
        datasets = from_webdataset(args.data, **options)
    else:
        datasets = from_table(args.data, root=args.root, **options)
    workers: Any = args.workers
    if args.ray is not None:
        from multimodal_dataset.ray import RayWorkers

        address = None if args.ray == "default" else args.ray
        workers = RayWorkers(num_actors=args.workers or 2, address=address)
        print(f"filling with {workers.describe()}")
    failed = 0
    for name, ds in zip(("training", "validation"), datasets, strict=True):
        if ds is None:
            continue
        for report in ds.fill_cache(workers=workers):
            print(f"{name} {report} in {report.seconds:.1f} s")
            failed += len(report.failed)
    print(f"cache: {args.cache}")
    if failed:
        print(
            f"{failed} image(s) could not be decoded and are not cached; training reports "
            "them (on_error='raise' stops at the first).",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m multimodal_dataset",
        description="Feed multi-input Keras 3 models on TensorFlow, JAX and PyTorch.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    example = commands.add_parser(
        "make-example",
        help="write a small multimodal dataset to DIR: JPEG images, captions, numbers and "
        "manifest.csv (or, with --format parquet, Parquet shards with the JPEGs inside)",
    )
    example.add_argument("directory", metavar="DIR")
    example.add_argument("--samples", type=int, default=2000)
    example.add_argument("--seed", type=int, default=0)
    example.add_argument("--format", choices=FORMATS, default="csv", help=FORMAT_HELP)
    example.set_defaults(run=_make_example)
    demo = commands.add_parser(
        "demo",
        help="train the reference image+text+numeric model from a table of files through "
        "from_table (backend from KERAS_BACKEND)",
    )
    demo.add_argument(
        "--data",
        metavar="DIR",
        help="a folder written by make-example (either format); default: write one to a "
        "temporary folder",
    )
    demo.add_argument("--epochs", type=int, default=10)
    demo.add_argument("--samples", type=int, default=2000, help="samples of the example")
    demo.add_argument("--batch-size", type=int, default=64)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--text-length",
        type=int,
        default=None,
        help="pad every caption to this many token ids; default: pad each batch to the "
        f"smallest of {TEXT_BUCKETS} that holds it, batching captions of similar length",
    )
    demo.add_argument(
        "--format", choices=FORMATS, default="csv", help=FORMAT_HELP + " (without --data)"
    )
    demo.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="Keras's fit verbosity (1: progress bar)",
    )
    demo.set_defaults(run=_demo)
    cache = commands.add_parser(
        "cache",
        help="decode every image of a table (or WebDataset shards) into cache=DIR ahead of "
        "training, with every core, and tokenize its texts; pass the from_table arguments "
        "training will use (the same split, size and text options find the same cache)",
    )
    cache.add_argument("data", metavar="TABLE", help="a table, folder, glob or shard pattern")
    cache.add_argument("--cache", metavar="DIR", required=True, help="the cache directory")
    cache.add_argument("--image", metavar="COLUMN", help="the image column (or shard key)")
    cache.add_argument("--image-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"))
    cache.add_argument("--color-mode", choices=("rgb", "grayscale", "rgba"), default="rgb")
    cache.add_argument("--text", metavar="COLUMN", help="the text column, to cache token ids")
    cache.add_argument("--text-length", type=int)
    cache.add_argument("--text-buckets", type=int, nargs="+", metavar="LENGTH")
    cache.add_argument("--max-tokens", type=int)
    cache.add_argument("--tokenizer", choices=("bpe",))
    cache.add_argument("--validation-split", type=float, default=0.2)
    cache.add_argument("--validation", metavar="TABLE", help="a predefined validation table")
    cache.add_argument("--seed", type=int, default=0, help="the split's seed")
    cache.add_argument("--root", metavar="DIR", help="folder of relative image paths")
    cache.add_argument("--webdataset", action="store_true", help="TABLE is WebDataset shards")
    cache.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes decoding (default: every core), or Ray actors with --ray (default 2)",
    )
    cache.add_argument(
        "--ray",
        metavar="ADDRESS",
        nargs="?",
        const="default",
        help="decode in Ray actors: the cluster at ADDRESS ('auto', a ray:// address), or "
        "RAY_ADDRESS / a new local cluster without one (pip install 'multimodal-dataset[ray]')",
    )
    cache.set_defaults(run=_cache)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
