"""The command line: make-example writes files, demo trains from them."""

from __future__ import annotations

import pytest

from multimodal_dataset.cli import main


def test_make_example_writes_images_and_a_manifest(tmp_path, capsys):
    assert main(["make-example", str(tmp_path / "data"), "--samples", "12"]) == 0
    assert len(list((tmp_path / "data" / "images").glob("*.jpg"))) == 12
    assert (tmp_path / "data" / "manifest.csv").exists()
    assert "Wrote 12 samples" in capsys.readouterr().out


def test_make_example_as_parquet_writes_shards_with_the_images_inside(tmp_path, capsys):
    import pyarrow.parquet as pq

    args = ["make-example", str(tmp_path), "--samples", "1500", "--format", "parquet"]
    assert main(args) == 0
    shards = sorted((tmp_path / "data").iterdir())
    assert [p.name for p in shards] == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ]
    assert not (tmp_path / "images").exists()
    image_type = pq.read_schema(shards[0]).field("image").type
    assert str(image_type) == "struct<bytes: binary, path: string>"
    assert "Wrote 1500 samples with their JPEG bytes" in capsys.readouterr().out


@pytest.mark.parametrize("format", ["csv", "parquet", "webdataset"])
def test_demo_trains_from_a_folder_and_reports_validation_accuracy(tmp_path, capsys, format):
    main(["make-example", str(tmp_path), "--samples", "100", "--format", format])
    assert main(["demo", "--data", str(tmp_path), "--epochs", "1", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "80 samples" in out and "20 samples" in out
    where = {"csv": "manifest.csv", "parquet": "data", "webdataset": "WebDataset shards"}
    assert where[format] in out
    assert "validation accuracy:" in out and "chance:" in out


def test_demo_without_data_writes_the_example_to_a_temporary_folder(capsys):
    args = ["demo", "--samples", "60", "--epochs", "1", "--verbose", "0", "--batch-size", "16"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Writing an example dataset of 60 samples" in out
    assert "validation accuracy:" in out


def test_an_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit):
        main(["train"])
    assert "usage" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "text_input"),
    [([], (None, None)), (["--text-length", "12"], (None, 12))],
    ids=["bucketed captions by default", "one fixed length on request"],
)
def test_the_demo_pads_captions_per_batch_unless_given_a_length(
    tmp_path, capsys, monkeypatch, options, text_input
):
    from multimodal_dataset import models

    built = {}
    build = models.build_reference_model

    def spy(**kwargs):
        built["model"] = build(**kwargs)
        return built["model"]

    monkeypatch.setattr(models, "build_reference_model", spy)
    main(["make-example", str(tmp_path), "--samples", "100"])
    args = ["demo", "--data", str(tmp_path), "--epochs", "1", "--verbose", "0", *options]
    assert main(args) == 0
    assert tuple(built["model"].inputs[1].shape) == text_input
    assert "validation accuracy:" in capsys.readouterr().out
