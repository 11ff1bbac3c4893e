"""Training from images stored inside tables (Parquet shards, Hugging Face datasets) keeps
every guarantee: each row reaches the training step once per epoch in every worker mode,
the stream is the same golden one on every backend, and shards split the rows exactly."""

from __future__ import annotations

import keras
import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import ID_COLUMNS, Recorder, RecordIds, id_table, ids_over_shards
from multimodal_dataset import from_table, testing

pytestmark = pytest.mark.keras

datasets = pytest.importorskip("datasets")

ROWS = 45


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    for k, part in enumerate(np.array_split(np.arange(ROWS), 3)):
        pq.write_table(id_table(part), folder / f"train-{k:05d}-of-00003.parquet", row_group_size=4)
    hf = datasets.Dataset.from_dict(id_table(range(ROWS)).to_pydict())
    hf.cast_column("image", datasets.Image()).save_to_disk(str(folder / "hf"))
    return {
        "Parquet shards": str(folder / "train-*.parquet"),
        "Hugging Face dataset": datasets.load_from_disk(str(folder / "hf")),
    }


def train_ids(table, epochs=2, **kwargs):
    """The ids each epoch trained on, read from the targets inside the train step."""
    train, _ = from_table(
        table, **ID_COLUMNS, target="label", validation_split=0, batch_size=8, seed=5, **kwargs
    )
    return fit_ids(train, epochs)


def fit_ids(train, epochs=2):
    """Fits a tiny (image, number) model on ``train``; the ids each epoch trained on."""
    recorder = Recorder()
    image, number = keras.Input((2, 2, 3)), keras.Input((1,))
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(image), number])
    model = keras.Model((image, number), keras.layers.Dense(1)(joined))
    model.compile("sgd", "mse", metrics=[RecordIds(recorder)], run_eagerly=True)
    model.fit(train, epochs=epochs, verbose=0, callbacks=[recorder])
    train.close()
    return [np.concatenate(batches) for batches in recorder.epochs]


@pytest.mark.backend
@pytest.mark.parametrize("kind", ["Parquet shards", "Hugging Face dataset"])
def test_every_row_of_image_bytes_trains_once_per_epoch_in_every_worker_mode(
    tables, kind, worker_mode
):
    epochs = train_ids(tables[kind], **worker_mode)
    assert len(epochs) == 2
    for ids in epochs:
        np.testing.assert_array_equal(np.sort(ids), np.arange(ROWS))
    assert not np.array_equal(epochs[0], epochs[1])
    assert [list(e) for e in epochs] == [list(e) for e in train_ids(tables["Parquet shards"])]


def test_the_stream_from_parquet_image_bytes_is_identical_on_every_backend(tables):
    train, val = from_table(tables["Parquet shards"], **ID_COLUMNS, target="label", batch_size=8)
    assert testing.stream_digest(train, epochs=2) == PARQUET_DIGEST
    assert testing.stream_digest(val, epochs=1) == PARQUET_VALIDATION_DIGEST


PARQUET_DIGEST = "9eb8a1fc5efb251cfa095cb0e89fe8d13b2ffbc1368e3e8fd8aecd98db803b14"
PARQUET_VALIDATION_DIGEST = "8520623e65df3dd95ac473ff4e0715dabdbfd806c180f3a3f2ce0a27c8b2fbfb"


def test_shards_of_a_parquet_table_split_its_rows_exactly(tables):
    def make_train(**shard):
        kwargs = {"validation_split": 0, "batch_size": 4, "seed": 2}
        return from_table(
            tables["Parquet shards"], **ID_COLUMNS, target="label", **kwargs, **shard
        )[0]

    np.testing.assert_array_equal(np.sort(ids_over_shards(make_train)), np.arange(ROWS))
