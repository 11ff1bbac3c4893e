"""The example dataset on disk and the reference model trained from it through from_table:
every modality is needed, and the model learns far above chance on every backend."""

from __future__ import annotations

import csv

import keras
import numpy as np
import pytest
from PIL import Image

from multimodal_dataset import MultimodalDataset, from_table, make_example, models
from multimodal_dataset.example import NUMERIC_COLUMNS

MODALITIES = ("image", "text", "numeric")


def test_the_example_is_real_jpegs_and_a_manifest(tmp_path):
    manifest = make_example(tmp_path, samples=25, seed=3)
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 25
    assert list(rows[0]) == ["image", "caption", *NUMERIC_COLUMNS, "label"]
    sizes = set()
    for row in rows:
        with Image.open(tmp_path / row["image"]) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            sizes.add(image.size)
        assert row["label"] in ("0", "1") and row["caption"]
    assert len(sizes) > 5  # images of many sizes: resizing is exercised


def test_the_example_is_reproducible_from_its_seed(tmp_path):
    a = make_example(tmp_path / "a", samples=5, seed=1).read_text()
    b = make_example(tmp_path / "b", samples=5, seed=1).read_text()
    assert a == b != make_example(tmp_path / "c", samples=5, seed=2).read_text()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    keras.utils.set_random_seed(0)
    manifest = make_example(tmp_path_factory.mktemp("files"), samples=1500, seed=0)
    train, val = from_table(
        manifest,
        image="image",
        text="caption",
        numeric=NUMERIC_COLUMNS,
        target="label",
        image_size=(32, 32),
        text_length=20,
        batch_size=64,
    )
    model = models.build_reference_model(vocab_size=len(train.preprocessing.vocabulary))
    train.check(model)
    history = model.fit(train, validation_data=val, epochs=12, verbose=0)
    batches = [val[i] for i in range(len(val))]
    inputs = {m: np.concatenate([b[0][k] for b in batches]) for k, m in enumerate(MODALITIES)}
    labels = np.concatenate([b[1] for b in batches])
    return model, history.history, inputs, labels


@pytest.mark.backend
def test_the_reference_model_learns_from_files_far_above_chance(trained):
    _, history, _, labels = trained
    chance = np.bincount(labels).max() / len(labels)
    assert history["val_accuracy"][-1] > 0.85 > chance + 0.2


@pytest.mark.backend
@pytest.mark.parametrize("modality", MODALITIES)
def test_every_modality_of_the_files_is_needed(trained, modality):
    model, _, inputs, labels = trained

    def accuracy(x):
        ds = MultimodalDataset(x, labels, batch_size=128)
        return model.evaluate(ds, verbose=0, return_dict=True)["accuracy"]

    full = accuracy(inputs)
    without = accuracy(dict(inputs, **{modality: np.zeros_like(inputs[modality])}))
    assert without < full - 0.08, f"zeroing {modality}: {without:.3f} vs {full:.3f}"
