"""Training from WebDataset shards keeps every guarantee: each sample reaches the training
step once per epoch in every worker mode, the stream is the golden one the same samples
give from Parquet (on every backend), shards of processes split the samples exactly, and
the shards are the ones the webdataset library (and wids) read."""

from __future__ import annotations

import numpy as np
import pytest
from test_table_formats import PARQUET_DIGEST, PARQUET_VALIDATION_DIGEST, fit_ids

from conftest import ids_over_shards, write_shards
from multimodal_dataset import from_table, from_webdataset, make_example, testing

pytestmark = pytest.mark.keras

webdataset = pytest.importorskip("webdataset")

ROWS = 45
WDS = {"image": "png", "numeric": ["json.id"], "image_size": (2, 2), "target": "cls"}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wds")
    write_shards(folder, np.arange(ROWS), shards=3)
    return str(folder / "{00000..00002}.tar")


@pytest.mark.backend
def test_every_sample_of_the_shards_trains_once_per_epoch_in_every_worker_mode(shards, worker_mode):
    def ids(**kwargs):
        train, _ = from_webdataset(
            shards, **WDS, validation_split=0, batch_size=8, seed=5, **kwargs
        )
        return fit_ids(train)

    epochs = ids(**worker_mode)
    for ids_ in epochs:
        np.testing.assert_array_equal(np.sort(ids_), np.arange(ROWS))
    assert [list(e) for e in epochs] == [list(e) for e in ids()]


def test_the_stream_from_shards_is_the_golden_stream_of_the_same_samples_in_parquet(shards):
    train, val = from_webdataset(shards, **WDS, batch_size=8)
    assert testing.stream_digest(train, epochs=2) == PARQUET_DIGEST
    assert testing.stream_digest(val, epochs=1) == PARQUET_VALIDATION_DIGEST


def test_a_cached_stream_is_the_golden_stream_and_the_next_run_decodes_nothing(
    shards, tmp_path, monkeypatch
):
    from multimodal_dataset.sources.images.decoding import ImageDecoder

    train, _ = from_webdataset(shards, **WDS, batch_size=8, cache=tmp_path)
    assert testing.stream_digest(train, epochs=2) == PARQUET_DIGEST
    monkeypatch.setattr(ImageDecoder, "decode", lambda self, data: pytest.fail("decoded"))
    train, val = from_webdataset(shards, **WDS, batch_size=8, cache=tmp_path)
    assert testing.stream_digest(train, epochs=2) == PARQUET_DIGEST
    monkeypatch.undo()  # the validation images were not read yet
    assert testing.stream_digest(val, epochs=1) == PARQUET_VALIDATION_DIGEST


def test_process_shards_split_the_samples_exactly(shards):
    def make_train(**shard):
        kwargs = {"validation_split": 0, "batch_size": 4, "seed": 2}
        return from_webdataset(shards, **WDS, **kwargs, **shard)[0]

    np.testing.assert_array_equal(np.sort(ids_over_shards(make_train)), np.arange(ROWS))


def test_the_example_shards_are_read_by_the_webdataset_library(tmp_path):
    folder = make_example(tmp_path, samples=30, seed=1, format="webdataset")
    urls = [str(p) for p in sorted(folder.glob("*.tar"))]
    samples = list(webdataset.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert len(samples) == 30
    assert {"jpg", "txt", "json", "cls"} <= set(samples[0])
    train, _ = from_webdataset(
        str(folder / "*.tar"),
        image="jpg",
        text="txt",
        numeric=["json.sensor_1"],
        target="cls",
        image_size=(8, 8),
        text_length=4,
        validation_split=0,
        shuffle=False,
        batch_size=30,
    )
    np.testing.assert_array_equal(train[0][1], [int(s["cls"]) for s in samples])


@pytest.mark.backend
def test_the_example_shards_are_read_by_wids(tmp_path):
    wids = pytest.importorskip("wids")  # wids imports torch: the torch session runs this
    folder = make_example(tmp_path, samples=30, seed=1, format="webdataset")
    (shard,) = folder.glob("*.tar")  # 30 samples: one shard
    shards = [{"url": str(shard), "nsamples": 30}]
    dataset = wids.ShardListDataset(shards)
    assert len(dataset) == 30 and dataset[29][".cls"] is not None


def test_the_example_as_shards_holds_the_same_samples_as_the_csv_example(tmp_path, example):
    from conftest import COLUMNS

    folder = make_example(tmp_path, samples=60, seed=1, format="webdataset")
    from_shards = from_webdataset(
        folder,
        image="jpg",
        text="txt",
        numeric=[f"json.{c}" for c in COLUMNS["numeric"]],
        target="cls",
        image_size=(16, 16),
        text_length=8,
        batch_size=16,
        seed=2,
    )
    from_csv = from_table(example, **COLUMNS, batch_size=16, seed=2)
    from conftest import assert_same_batches

    for a, b in zip(from_shards, from_csv, strict=True):
        assert_same_batches(a, b)
