"""Contracts every source and every dataset keeps, checked with `multimodal_dataset.testing`
(the checks users run on their own sources): declared shape and dtype, a batch equal to its
samples, pickling, purity in (seed, epoch, index), the same stream in every worker mode,
and get_state/set_state continuing the stream."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import COLUMNS
from multimodal_dataset import (
    ImageAugmentation,
    ImageBytes,
    ImageFiles,
    MultimodalDataset,
    NumericColumns,
    TextTokens,
    from_table,
    testing,
)

pytestmark = pytest.mark.keras

CAPTIONS = ["a red circle", "two blue squares", "", "a green triangle again", "red"] * 3


def make_source(kind, image_files):
    if kind == "ImageFiles":
        return ImageFiles(image_files, size=(8, 8))
    if kind == "ImageFiles augmented":
        augment = ImageAugmentation("horizontal", crop_padding=2)
        return ImageFiles(image_files, size=(8, 8), augment=augment, dtype="uint8")
    if kind == "ImageBytes":
        return ImageBytes([p.read_bytes() for p in image_files], size=(8, 8))
    if kind == "TextTokens":
        return TextTokens(CAPTIONS[:12], length=5)
    if kind == "TextTokens with buckets":
        return TextTokens(CAPTIONS[:12], buckets=(2, 4, 8))
    if kind == "NumericColumns":
        return NumericColumns({"a": np.arange(12.0), "b": np.arange(12) ** 2})
    raise AssertionError(kind)


SOURCES = [
    "ImageFiles",
    "ImageFiles augmented",
    "ImageBytes",
    "TextTokens",
    "TextTokens with buckets",
    "NumericColumns",
]


@pytest.mark.parametrize("kind", SOURCES)
def test_every_source_keeps_the_source_contract(kind, image_files):
    testing.check_source(make_source(kind, image_files), seed=3)


@pytest.mark.parametrize("kind", SOURCES)
def test_every_source_gives_the_same_stream_in_every_worker_mode(kind, image_files, worker_mode):
    def digest(**mode):
        ds = MultimodalDataset(
            make_source(kind, image_files), np.arange(12), batch_size=5, seed=1, **mode
        )
        try:
            return testing.stream_digest(ds, epochs=2)
        finally:
            ds.close()

    assert digest(**worker_mode) == digest()


def dataset_kinds(tmp_path, image_files, example, parquet_example):
    ids = np.arange(40)
    np.save(tmp_path / "ids.npy", ids[:, None].astype(np.float32))
    yield "arrays", MultimodalDataset(ids[:, None], ids, batch_size=6, seed=0)
    yield "memory map", MultimodalDataset(str(tmp_path / "ids.npy"), ids, batch_size=6, seed=0)
    yield (
        "padded shard",
        MultimodalDataset(
            ids[:, None], ids, batch_size=6, seed=0, shard=(1, 2), pad_remainder=True
        ),
    )
    yield (
        "sources",
        MultimodalDataset(
            (make_source("ImageFiles", image_files), make_source("TextTokens", image_files)),
            np.arange(12),
            batch_size=5,
            seed=0,
        ),
    )
    train, _ = from_table(example, **COLUMNS, batch_size=8)
    yield "table", train
    train, _ = from_table(parquet_example, **COLUMNS, batch_size=8)
    yield "Parquet table with image bytes", train


def test_every_dataset_kind_resumes_from_its_state(tmp_path, image_files, example, parquet_example):
    for name, ds in dataset_kinds(tmp_path, image_files, example, parquet_example):
        try:
            testing.check_resumable(ds)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from error
