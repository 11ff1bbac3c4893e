"""Training from object storage keeps every guarantee: a CSV with relative image paths,
Parquet with embedded images and WebDataset shards on an S3 server (moto, on 127.0.0.1)
give the very stream their local copies give, each sample once per epoch in every worker
mode, split exactly across process shards; and a wrong bucket, an unreachable store, a
missing object or missing credentials is an error naming the URL and the fix."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_table_formats import PARQUET_DIGEST, PARQUET_VALIDATION_DIGEST, fit_ids

from conftest import ID_COLUMNS, id_table, ids_over_shards, upload, write_shards
from multimodal_dataset import (
    ReplacedSamplesWarning,
    SampleError,
    TablePreprocessing,
    from_table,
    from_webdataset,
    make_example,
    testing,
)
from multimodal_dataset.io.storage_errors import (
    CredentialsError,
    MissingBucketError,
    RetriesExhaustedError,
)

ROWS = 45
WDS = {"image": "png", "numeric": ["json.id"], "image_size": (2, 2), "target": "cls"}
CSV = {
    "image": "image",
    "text": "caption",
    "numeric": ["sensor_1", "sensor_2"],
    "target": "label",
    "image_size": (8, 8),
    "text_length": 6,
    "batch_size": 8,
}


@pytest.fixture(scope="module")
def remote(s3, tmp_path_factory):
    """The same samples locally and on S3: WebDataset shards, Parquet shards, and a CSV
    manifest whose image paths are relative to it."""
    folder = tmp_path_factory.mktemp("remote")
    write_shards(folder / "wds", np.arange(ROWS), shards=3)
    for k, part in enumerate(np.array_split(np.arange(ROWS), 3)):
        (folder / "pq").mkdir(exist_ok=True)
        pq.write_table(id_table(part), folder / "pq" / f"train-{k:05d}-of-00003.parquet")
    manifest = make_example(folder / "csv", samples=24, seed=3)
    for name in ("wds", "pq", "csv"):
        upload(s3, folder / name, f"s3://data/{name}")
    return {"local": folder, "manifest": manifest, "options": s3[1]}


def shards_on_s3(remote):
    return "s3://data/wds/{00000..00002}.tar"


@pytest.mark.backend
def test_shards_on_s3_train_each_sample_once_per_epoch_in_every_worker_mode(remote, worker_mode):
    def ids(shards, **kwargs):
        train, _ = from_webdataset(
            shards,
            **WDS,
            validation_split=0,
            batch_size=8,
            seed=5,
            storage_options=remote["options"],
            **kwargs,
        )
        return fit_ids(train)

    epochs = ids(shards_on_s3(remote), **worker_mode)
    for ids_ in epochs:
        np.testing.assert_array_equal(np.sort(ids_), np.arange(ROWS))
    local = ids(str(remote["local"] / "wds" / "{00000..00002}.tar"))
    assert [list(e) for e in epochs] == [list(e) for e in local]


@pytest.mark.keras
@pytest.mark.parametrize(
    ("source", "read"),
    [
        ("s3://data/wds/{00000..00002}.tar", from_webdataset),
        ("s3://data/wds/*.tar", from_webdataset),
        ("s3://data/wds", from_webdataset),
        ("s3://data/pq/train-*.parquet", from_table),
    ],
    ids=["shards by braces", "shards by glob", "folder of shards", "Parquet shards"],
)
def test_the_stream_from_s3_is_the_golden_stream_of_the_same_samples(remote, source, read):
    columns = WDS if read is from_webdataset else {**ID_COLUMNS, "target": "label"}
    train, val = read(source, **columns, batch_size=8, storage_options=remote["options"])
    assert testing.stream_digest(train, epochs=2) == PARQUET_DIGEST
    assert testing.stream_digest(val, epochs=1) == PARQUET_VALIDATION_DIGEST


@pytest.mark.keras
def test_a_csv_on_s3_reads_its_relative_image_paths_from_beside_it(remote):
    train, val = from_table("s3://data/csv/manifest.csv", **CSV, storage_options=remote["options"])
    local_train, local_val = from_table(str(remote["manifest"]), **CSV)
    assert testing.stream_digest(train) == testing.stream_digest(local_train)
    assert testing.stream_digest(val, 1) == testing.stream_digest(local_val, 1)


@pytest.mark.keras
def test_process_shards_of_s3_shards_split_the_samples_exactly(remote):
    def make_train(**shard):
        kwargs = {"validation_split": 0, "batch_size": 4, "seed": 2}
        options = remote["options"]
        return from_webdataset(
            shards_on_s3(remote), **WDS, **kwargs, storage_options=options, **shard
        )[0]

    np.testing.assert_array_equal(np.sort(ids_over_shards(make_train)), np.arange(ROWS))


@pytest.mark.keras
def test_preprocessing_saved_to_s3_reads_s3_shards_as_it_was_fitted(remote):
    options = remote["options"]
    train, _ = from_webdataset(shards_on_s3(remote), **WDS, storage_options=options)
    train.preprocessing.save("s3://data/model/preprocessing.json", storage_options=options)
    loaded = TablePreprocessing.load("s3://data/model/preprocessing.json", storage_options=options)
    again = loaded.dataset(shards_on_s3(remote), storage_options=options, batch_size=8)
    local = train.preprocessing.dataset(
        str(remote["local"] / "wds" / "{00000..00002}.tar"), batch_size=8
    )
    assert testing.stream_digest(again, 1) == testing.stream_digest(local, 1)


# ------------------------------------------------------------------------ bad input


def test_a_wrong_bucket_is_named_with_the_fix(remote):
    with pytest.raises(MissingBucketError, match=r"bucket 'no-such-bucket' does not exist.*"):
        from_webdataset(
            "s3://no-such-bucket/wds/00000.tar", **WDS, storage_options=remote["options"]
        )


def test_a_glob_that_matches_nothing_on_s3_names_the_pattern(remote):
    with pytest.raises(FileNotFoundError, match=r"'s3://data/wds/\*\.tgz' matches no object"):
        from_webdataset("s3://data/wds/*.tgz", **WDS, storage_options=remote["options"])


def test_an_unreachable_store_is_an_error_naming_the_url_and_the_attempts(remote, monkeypatch):
    # The attempts are the point, not their backoff (test_storage times that).
    monkeypatch.setattr("multimodal_dataset.io.storage.BACKOFF_S", 0.001)
    unreachable = {**remote["options"], "endpoint_url": "http://127.0.0.1:9"}
    with pytest.raises(RetriesExhaustedError, match=r"'s3://data/wds/00000.tar'.*after 4 attempts"):
        from_webdataset("s3://data/wds/00000.tar", **WDS, storage_options=unreachable)


def test_missing_credentials_name_the_option_to_set(remote, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    options = {"endpoint_url": remote["options"]["endpoint_url"]}
    with pytest.raises(CredentialsError, match=r"'s3://data/wds/00000.tar'.*storage_options"):
        from_webdataset("s3://data/wds/00000.tar", **WDS, storage_options=options)


@pytest.mark.keras
def test_an_image_missing_from_s3_is_named_or_replaced_and_reported(remote, s3, tmp_path):
    manifest = tmp_path / "manifest.csv"
    text = remote["manifest"].read_text().replace("images/00003.jpg", "images/gone.jpg")
    manifest.write_text(text)
    upload(s3, manifest, "s3://data/csv/broken.csv")
    options = remote["options"]
    columns = {**CSV, "validation_split": 0, "shuffle": False}
    train, _ = from_table("s3://data/csv/broken.csv", **columns, storage_options=options)
    with pytest.raises(SampleError, match=r"'s3://data/csv/images/gone.jpg' does not exist"):
        testing.stream_digest(train, 1)
    train, _ = from_table(
        "s3://data/csv/broken.csv", **columns, on_error="replace", storage_options=options
    )
    with pytest.warns(ReplacedSamplesWarning, match="gone.jpg"):
        testing.stream_digest(train, 1)
    assert [r.sample for r in train.replacements] == [3]
    assert "'s3://data/csv/images/gone.jpg' does not exist" in train.replacements[0].reason
