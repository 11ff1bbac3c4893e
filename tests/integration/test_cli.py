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


@pytest.mark.backend
@pytest.mark.parametrize("format", ["csv", "parquet", "webdataset"])
def test_demo_trains_from_a_folder_and_reports_validation_accuracy(tmp_path, capsys, format):
    main(["make-example", str(tmp_path), "--samples", "100", "--format", format])
    assert main(["demo", "--data", str(tmp_path), "--epochs", "1", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "80 samples" in out and "20 samples" in out
    where = {"csv": "manifest.csv", "parquet": "data", "webdataset": "WebDataset shards"}
    assert where[format] in out
    assert "validation accuracy:" in out and "chance:" in out


@pytest.mark.backend
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


@pytest.mark.backend
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


@pytest.mark.keras
@pytest.mark.parametrize("workers", ["1", "2"])
def test_cache_fills_ahead_so_training_decodes_and_tokenizes_nothing(
    tmp_path, capsys, monkeypatch, workers
):
    from multimodal_dataset import from_table
    from multimodal_dataset.sources.images.decoding import ImageDecoder
    from multimodal_dataset.sources.text import tokens as text_module

    main(["make-example", str(tmp_path / "data"), "--samples", "50"])
    manifest, cache = str(tmp_path / "data" / "manifest.csv"), str(tmp_path / "cache")
    options = ["--image", "image", "--image-size", "16", "16", "--text", "caption"]
    args = ["cache", manifest, "--cache", cache, *options, "--text-length", "8"]
    assert main([*args, "--workers", workers]) == 0
    out = capsys.readouterr().out
    assert "training inputs[0]: 40 images, 40 decoded now" in out
    assert "validation inputs[0]: 10 images, 10 decoded now" in out

    monkeypatch.setattr(ImageDecoder, "decode", lambda self, data: pytest.fail("decoded"))
    monkeypatch.setattr(text_module, "tokenize_chunks", lambda *a: pytest.fail("tokenized"))
    train, val = from_table(
        manifest,
        image="image",
        text="caption",
        target="label",
        image_size=(16, 16),
        text_length=8,
        cache=cache,
        batch_size=16,
    )
    for ds in (train, val):
        for i in range(len(ds)):
            ds[i]
    assert main([*args]) == 0  # nothing left to do
    assert "0 decoded now" in capsys.readouterr().out


@pytest.mark.keras
def test_cache_lists_the_images_it_could_not_decode_and_fails(tmp_path, capsys):
    main(["make-example", str(tmp_path / "data"), "--samples", "20"])
    broken = sorted((tmp_path / "data" / "images").glob("*.jpg"))[3]
    broken.write_bytes(b"not a jpeg")
    args = ["cache", str(tmp_path / "data" / "manifest.csv"), "--cache", str(tmp_path / "c")]
    code = main([*args, "--image", "image", "--image-size", "8", "8", "--validation-split", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "1 could not be decoded (the first: image file" in captured.out
    assert broken.name in captured.out
    assert "1 image(s) could not be decoded and are not cached" in captured.err
