"""The README's examples run as written on the active backend."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.keras

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of a README section (up to the next heading of any level)."""
    text = README.read_text()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^#)", text, re.S | re.M)
    assert match is not None, f"README.md lost its '## {section}' section"
    return re.findall(r"```python\n(.*?)```", match.group(1), re.S)


@pytest.mark.backend
def test_the_ten_line_example_trains_far_above_chance():
    (code,) = python_blocks("Ten lines")
    namespace: dict = {}
    exec(compile(code.replace("epochs=5)", "epochs=5, verbose=0)"), str(README), "exec"), namespace)
    history = namespace["model"].history.history
    assert history["val_accuracy"][-1] > 0.8


@pytest.mark.backend
def test_the_from_files_example_trains_saves_and_predicts_on_new_rows(tmp_path, monkeypatch):
    train_code, inference_code = python_blocks(
        "From files: a table of image paths, captions and numbers"
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    # Fewer samples and one quiet epoch: this checks the calls, test_example the learning.
    train_code = train_code.replace("samples=2000", "samples=200").replace(
        "epochs=10)", "epochs=1, verbose=0)"
    )
    exec(compile(train_code, str(README), "exec"), namespace)
    assert (tmp_path / "preprocessing.json").exists()
    with open(namespace["manifest"], newline="") as f:
        rows = [row[:-1] for row in csv.reader(f)]  # new rows: no label column
    with open(tmp_path / "example_data" / "new_rows.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows[:51])  # the header and 50 rows
    inference_code = inference_code.replace('"new_rows.csv"', '"example_data/new_rows.csv"')
    inference_code = inference_code.replace("model.predict(new)", "model.predict(new, verbose=0)")
    exec(compile(inference_code, str(README), "exec"), namespace)
    assert namespace["predictions"].shape == (50, 2)


@pytest.mark.backend
def test_the_parquet_and_hugging_face_examples_run_as_written(tmp_path, monkeypatch):
    import datasets
    import pyarrow as pa

    from conftest import id_table

    parquet_code, hugging_face_code = python_blocks(
        "Images inside tables: Parquet, Arrow and Hugging Face datasets"
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    parquet_code = parquet_code.replace("samples=2000", "samples=1200").replace(
        "epochs=10)", "epochs=4, verbose=0)"
    )
    exec(compile(parquet_code, str(README), "exec"), namespace)
    assert len(list((tmp_path / "example_parquet" / "data").glob("train-*.parquet"))) == 2
    assert namespace["model"].history.history["val_accuracy"][-1] > 0.6

    table = id_table(range(40)).rename_columns(["image", "label", "text"])
    table = table.set_column(1, "label", pa.array([i % 3 for i in range(40)]))
    whole = datasets.Dataset.from_dict(table.to_pydict()).cast_column("image", datasets.Image())
    datasets.DatasetDict(
        {"train": whole.select(range(30)), "validation": whole.select(range(30, 40))}
    ).save_to_disk("my_dataset")
    exec(compile(hugging_face_code, str(README), "exec"), namespace)
    assert len(namespace["val"].input_structure.fields[0].array) == 10


def test_the_webdataset_example_runs_as_written(tmp_path, monkeypatch):
    (code,) = python_blocks("WebDataset shards: exact epochs over tar files")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace("samples=2000", "samples=1200"), str(README), "exec"), namespace)
    assert len(list((tmp_path / "example_shards" / "shards").glob("*.tar"))) == 2
    train, val = namespace["train"], namespace["val"]
    assert len(train) == 15 and len(val) == 4  # 960 and 240 samples, batches of 64
    (image, tokens, numbers), labels = train[0]
    assert image.shape == (64, 32, 32, 3) and tokens.shape == (64, 20) and numbers.shape == (64, 2)
    assert set(labels.tolist()) == {0, 1}


def test_the_remote_storage_example_runs_as_written_against_an_s3_server(s3, tmp_path):
    from conftest import upload
    from multimodal_dataset import make_example

    (code,) = python_blocks("Remote storage: S3, GCS, HTTP and other fsspec URLs")
    fs, options = s3
    fs.mkdir("my-bucket")
    shards = make_example(tmp_path / "wds", samples=200, seed=0, format="webdataset")
    upload(s3, shards, "s3://my-bucket/shards")
    make_example(tmp_path / "csv", samples=100, seed=0)
    upload(s3, tmp_path / "csv", "s3://my-bucket")
    code = re.sub(r"^options = .*$", f"options = {options!r}", code, count=1, flags=re.M)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    train, table_train = namespace["train"], namespace["table_train"]
    (image, tokens), labels = train[0]
    assert image.shape == (64, 32, 32, 3) and tokens.shape == (64, 20)
    assert set(labels.tolist()) <= {0, 1}
    assert len(train) == 3 and len(table_train) == 3  # 160 and 80 samples, batches of 32/64
    assert namespace["loaded"].to_dict() == train.preprocessing.to_dict()


@pytest.mark.backend
def test_the_variable_length_text_example_runs_as_written():
    (code,) = python_blocks(
        "Variable-length text: bucketed batches and a shape every backend accepts"
    )
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert len(namespace["model"].history.history["loss"]) == 2
    assert namespace["ds"].element_spec[0].shape == (None, None)
