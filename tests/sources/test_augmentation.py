"""ImageAugmentation: flips and crops drawn from (seed, epoch, sample index) only, so the
stream is identical in every worker mode and new in every epoch."""

from __future__ import annotations

import numpy as np
import pytest

from multimodal_dataset import ImageAugmentation, ImageFiles, MultimodalDataset
from multimodal_dataset.sources.images.augmentation import uniform


def test_draws_are_a_pure_function_of_seed_epoch_index_and_stream():
    indices = np.arange(1000)
    first = uniform(7, 3, indices, 0)
    assert (first >= 0).all() and (first < 1).all()
    np.testing.assert_array_equal(first, uniform(7, 3, indices, 0))
    np.testing.assert_array_equal(first[[5, 500]], uniform(7, 3, np.array([5, 500]), 0))
    for other in (uniform(8, 3, indices, 0), uniform(7, 4, indices, 0), uniform(7, 3, indices, 1)):
        assert np.abs(first - other).mean() > 0.2
    assert abs(first.mean() - 0.5) < 0.05


def test_the_largest_seed_is_accepted():
    assert uniform(2**63 - 1, 0, np.arange(3), 0).shape == (3,)


def numbered_images(n=400, h=4, w=5):
    """Each pixel's value encodes (sample, row, column)."""
    return (np.arange(n)[:, None, None] * 100 + np.arange(h)[:, None] * 10 + np.arange(w)).reshape(
        n, h, w, 1
    )


def test_a_horizontal_flip_mirrors_about_half_the_samples_exactly():
    images = numbered_images()
    out = ImageAugmentation(flip="horizontal").apply(images, np.arange(400), seed=0, epoch=0)
    flipped = np.array([(o == i[:, ::-1]).all() for o, i in zip(out, images, strict=True)])
    kept = np.array([(o == i).all() for o, i in zip(out, images, strict=True)])
    assert (flipped | kept).all()
    assert 0.4 < flipped.mean() < 0.6


def test_vertical_and_both_flips():
    images = numbered_images()
    vertical = ImageAugmentation(flip="vertical").apply(images, np.arange(400), 0, 0)
    assert all(
        (o == i).all() or (o == i[::-1]).all() for o, i in zip(vertical, images, strict=True)
    )
    both = ImageAugmentation(flip="horizontal_and_vertical").apply(images, np.arange(400), 0, 0)
    rotated = np.mean([(o == i[::-1, ::-1]).all() for o, i in zip(both, images, strict=True)])
    assert 0.15 < rotated < 0.35


@pytest.mark.parametrize("fill_mode", ["constant", "reflect"])
def test_a_padded_crop_is_a_shifted_window_of_the_padded_image(fill_mode):
    images = numbered_images(200, 6, 6)
    aug = ImageAugmentation(flip=None, crop_padding=2, fill_mode=fill_mode)
    out = aug.apply(images, np.arange(200), seed=1, epoch=0)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode=fill_mode)
    shifts = set()
    for k in range(200):
        windows = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if (padded[k, dy : dy + 6, dx : dx + 6] == out[k]).all()
        ]
        assert windows, f"sample {k} is not a window of its padded image"
        shifts.add(windows[0])
    assert len(shifts) == 25  # every offset in [0, 2 * padding] occurs


def test_no_flip_and_no_padding_leaves_images_untouched():
    images = numbered_images()
    assert ImageAugmentation(flip=None).apply(images, np.arange(400), 0, 0) is images


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"flip": "sideways"}, "flip must be"),
        ({"crop_padding": -1}, "crop_padding"),
        ({"crop_padding": 1.5}, "crop_padding"),
        ({"fill_mode": "wrap"}, "fill_mode"),
    ],
)
def test_bad_settings_say_what_is_allowed(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageAugmentation(**kwargs)


def epoch_stream(paths, epochs=2, **kwargs):
    aug = ImageAugmentation(flip="horizontal", crop_padding=3)
    source = ImageFiles(paths, size=(20, 30), dtype="uint8", augment=aug)
    ds = MultimodalDataset(source, np.arange(len(paths)), batch_size=5, seed=3, **kwargs)
    batches = []
    try:
        for _ in range(epochs):
            batches.append([ds[i] for i in range(len(ds))])
            ds.on_epoch_end()
    finally:
        ds.close()
    return batches


def by_sample(epoch_batches):
    images = {}
    for x, y in epoch_batches:
        images.update(zip(y.tolist(), x, strict=True))
    return images


@pytest.mark.keras
def test_the_augmented_stream_is_identical_in_every_worker_mode(image_files, worker_mode):
    reference = epoch_stream(image_files)
    stream = epoch_stream(image_files, **worker_mode)
    for ref_epoch, epoch in zip(reference, stream, strict=True):
        for (rx, ry), (x, y) in zip(ref_epoch, epoch, strict=True):
            np.testing.assert_array_equal(ry, y)
            np.testing.assert_array_equal(rx, x)


@pytest.mark.keras
def test_each_epoch_draws_new_augmentations_for_the_same_sample(image_files):
    first, second = (by_sample(e) for e in epoch_stream(image_files))
    changed = [s for s in first if not np.array_equal(first[s], second[s])]
    assert len(changed) >= 8  # of 12; a few may draw the same flip and shift by chance


@pytest.mark.keras
def test_validation_images_are_not_augmented_when_no_augment_is_given(image_files):
    plain = ImageFiles(image_files, size=(20, 30), dtype="uint8")
    ds = MultimodalDataset(plain, np.arange(12), batch_size=12, shuffle=False)
    x, _ = ds[0]
    ds.on_epoch_end()
    np.testing.assert_array_equal(x, ds[0][0])
