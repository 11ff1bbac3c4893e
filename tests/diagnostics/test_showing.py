"""ds.show_batch(): a grid of samples as the model receives them, drawn headless."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from multimodal_dataset import ImageAugmentation, MultimodalDataset, TextTokens, from_table

pytest.importorskip("matplotlib")


def texts_of(figure) -> list[str]:
    """Every piece of text drawn in the figure: titles, captions, the legend."""
    found = [figure._suptitle.get_text()] if figure._suptitle else []
    for axis in figure.axes:
        found += [axis.get_title(), axis.get_xlabel()] + [t.get_text() for t in axis.texts]
    return [t for t in found if t]


@pytest.fixture
def table(image_files) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": [p.name for p in image_files],
            "caption": [f"a {'red' if i % 2 else 'blue'} thing number {i}" for i in range(12)],
            "price": np.arange(12.0) * 10 + 5,
            "label": ["cat" if i % 3 else "dog" for i in range(12)],
        }
    )


@pytest.mark.keras
def test_a_table_dataset_shows_images_captions_numbers_and_class_names(table, tmp_path):
    train, _ = from_table(
        table,
        image="image",
        text="caption",
        numeric="price",
        target="label",
        image_size=(16, 16),
        text_length=8,
        validation_split=0,
        root=tmp_path,
        batch_size=4,
    )
    png = tmp_path / "batch.png"
    figure = train.show_batch(n=6, path=png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = "\n".join(texts_of(figure))
    assert "6 samples as the model receives them" in drawn
    assert "label cat (0)" in drawn or "label dog (1)" in drawn
    assert "[PAD]*" in drawn  # captions of 5 words padded to 8 ids
    assert "thing number" in drawn
    for axis in [a for a in figure.axes if a.get_title()]:  # standardised, then original
        row = int(axis.get_title().split()[1])
        assert "price: " in axis.get_xlabel() and f"({10 * row + 5})" in axis.get_xlabel()
    assert sum(len(axis.images) for axis in figure.axes) == 6


@pytest.mark.keras
def test_showing_a_batch_leaves_the_epoch_and_its_stream_untouched():
    x, y = np.random.default_rng(0).random((20, 8, 8, 3), "float32"), np.arange(20)
    ds = MultimodalDataset(x, y, batch_size=4, seed=3)
    first = ds[0]
    ds.on_epoch_end()  # epoch 1
    before = (ds.epoch, ds.get_state(), ds.stats)
    ds.show_batch(n=5)
    assert (ds.epoch, ds.get_state(), ds.stats) == before
    twin = MultimodalDataset(x, y, batch_size=4, seed=3)
    twin.on_epoch_end()
    np.testing.assert_array_equal(ds[0][1], twin[0][1])
    assert not np.array_equal(first[1], ds[0][1])  # a new epoch's order, as without showing


@pytest.mark.keras
def test_the_images_are_shown_after_augmentation(table, tmp_path):
    flip = ImageAugmentation(flip="horizontal", crop_padding=0)
    train, _ = from_table(
        table,
        image="image",
        target="label",
        image_size=(16, 16),
        augment=flip,
        validation_split=0,
        root=tmp_path,
        batch_size=4,
        seed=1,
    )
    shown = train.show_batch(n=4).axes[0].images[0].get_array()
    np.testing.assert_allclose(np.asarray(shown), train[0][0][0], atol=1e-6)


@pytest.mark.keras
def test_an_inference_dataset_shows_its_inputs_and_says_it_has_no_labels():
    tokens = TextTokens(["one two", "three four five", "six"], length=4)
    ds = MultimodalDataset((tokens, np.ones((3, 2), "float32")), batch_size=2)
    drawn = "\n".join(texts_of(ds.show_batch()))
    assert "inputs only (an inference dataset has no labels)" in drawn
    assert "label" not in drawn.replace("no labels", "")
    assert "three four five [PAD]*1" in drawn


@pytest.mark.keras
def test_texts_padded_per_batch_are_shown_across_batches_of_different_widths():
    texts = ["a"] * 4 + ["b c d e f g h i j k"] * 4
    tokens = TextTokens(texts, buckets=(2, 16))
    ds = MultimodalDataset(tokens, np.arange(8), batch_size=4, shuffle=False)
    drawn = "\n".join(texts_of(ds.show_batch(n=8)))
    assert "a [PAD]*15" in drawn and "b c d e f g h i j k [PAD]*6" in drawn


def test_decode_marks_unknown_words_and_counts_the_padding():
    tokens = TextTokens(["the cat sat"], length=6)
    ids = tokens.vocabulary.encode(["the dog sat"], 6)[0]
    assert tokens.decode(ids) == "the [UNK] sat [PAD]*3"


@pytest.mark.keras
def test_without_matplotlib_the_error_says_how_to_install_it(monkeypatch):
    for module in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    ds = MultimodalDataset(np.ones((4, 2), "float32"), np.arange(4), batch_size=2)
    with pytest.raises(ImportError, match=r"multimodal-dataset\[plot\]"):
        ds.show_batch()


@pytest.mark.keras
@pytest.mark.parametrize("n", [0, -1, 2.5])
def test_n_must_be_a_positive_number_of_samples(n):
    ds = MultimodalDataset(np.ones((4, 2), "float32"), np.arange(4), batch_size=2)
    with pytest.raises((ValueError, TypeError), match="n must be"):
        ds.show_batch(n=n)


@pytest.mark.keras
def test_dict_inputs_categories_and_several_targets_are_shown_by_name(table, tmp_path):
    frame = table.assign(
        shade=["red" if i % 2 else "blue" for i in range(12)],
        tags=[["cheap", "new"][: i % 3] for i in range(12)],
    )
    train, _ = from_table(
        frame,
        image="image",
        numeric="price",
        categorical="shade",
        target=["label", "tags"],
        inputs="dict",
        image_size=(16, 16),
        validation_split=0,
        root=tmp_path,
        shuffle=False,
        batch_size=4,
        value_range=(-1, 1),
    )
    figure = train.show_batch(n=3)
    titles = [a.get_title() for a in figure.axes if a.get_title()]
    assert titles[0] == "sample 0 · label dog (1) · tags {}"
    assert titles[1] == "sample 1 · label cat (0) · tags cheap (0)"  # one label: as one-hot
    assert titles[2] == "sample 2 · label cat (0) · tags {cheap, new}"
    labels = [a.get_xlabel() for a in figure.axes if a.get_title()]
    assert "shade: blue (" in labels[0] and "shade: red (" in labels[1]
    shown = figure.axes[0].images[0].get_array()
    assert shown.min() >= 0 and shown.max() <= 1  # (-1, 1) mapped back for drawing
