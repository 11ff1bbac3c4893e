"""The decoded-image cache: an image is decoded once and served from memory-mapped files
after, never stale (keyed by everything that changes its pixels), completed after an
interruption, checked for damage, safe to fill from several processes, and a clear error
where it cannot be used."""

from __future__ import annotations

import errno
import multiprocessing
import os
import time
import warnings

import numpy as np
import pytest

from conftest import gather, write_image
from multimodal_dataset import (
    CacheError,
    CacheWarning,
    ImageAugmentation,
    ImageBytes,
    ImageFiles,
    MultimodalDataset,
)
from multimodal_dataset.sources.images.decoding import ImageDecoder
from worker_sources import fill_image_cache


@pytest.fixture
def decodes(monkeypatch):
    """Counts the images decoded (in any thread of this process)."""
    calls = []
    decode = ImageDecoder.decode

    def counting(self, data):
        calls.append(1)
        return decode(self, data)

    monkeypatch.setattr(ImageDecoder, "decode", counting)
    return calls


def images(paths, cache, **options):
    return ImageFiles(paths, (8, 8), dtype="uint8", cache=cache, **options)


def test_an_image_is_decoded_once_then_served_from_the_cache_in_this_run_and_the_next(
    image_files, tmp_path, decodes
):
    expected = gather(images(image_files, None))
    decodes.clear()
    source = images(image_files, tmp_path / "cache")
    np.testing.assert_array_equal(gather(source), expected)
    assert len(decodes) == 12
    np.testing.assert_array_equal(gather(source), expected)
    np.testing.assert_array_equal(gather(images(image_files, tmp_path / "cache")), expected)
    assert len(decodes) == 12  # nothing decoded again, in this source or a new one


def test_augmentation_draws_anew_each_epoch_from_the_cached_images(image_files, tmp_path):
    augment = ImageAugmentation(flip="horizontal", crop_padding=2)
    plain = images(image_files, None, augment=augment)
    cached = images(image_files, tmp_path / "cache", augment=augment)
    for epoch in range(3):
        np.testing.assert_array_equal(
            gather(cached, seed=5, epoch=epoch), gather(plain, seed=5, epoch=epoch)
        )
    assert not np.array_equal(gather(cached, seed=5, epoch=0), gather(cached, seed=5, epoch=1))


@pytest.mark.parametrize(
    "options",
    [{"size": (6, 6)}, {"interpolation": "nearest"}, {"crop_to_aspect_ratio": True}],
)
def test_another_preprocessing_gets_its_own_cache_never_the_other_ones_pixels(
    image_files, tmp_path, options
):
    gather(images(image_files, tmp_path / "cache"))
    size = options.pop("size", (8, 8))
    other = ImageFiles(image_files, size, dtype="uint8", cache=tmp_path / "cache", **options)
    expected = ImageFiles(image_files, size, dtype="uint8", **options)
    np.testing.assert_array_equal(gather(other), gather(expected))
    assert len(list((tmp_path / "cache").glob("decoded-*/meta.json"))) == 2


def test_a_changed_file_is_decoded_again_and_only_that_one(image_files, tmp_path, decodes):
    gather(images(image_files, tmp_path / "cache"))
    pixels = np.full((20, 30, 3), 77, np.uint8)
    write_image(image_files[3], pixels)
    later = time.time() + 5
    os.utime(image_files[3], (later, later))
    decodes.clear()
    batch = gather(images(image_files, tmp_path / "cache"))
    assert len(decodes) == 1 and (batch[3] == 77).all()


def test_an_interrupted_fill_is_completed_by_the_next_run(image_files, tmp_path, decodes):
    gather(images(image_files, tmp_path / "cache"), indices=[0, 1, 2, 3, 4])
    decodes.clear()
    source = images(image_files, tmp_path / "cache")
    np.testing.assert_array_equal(gather(source), gather(images(image_files, None)))
    assert len(decodes) == 7 + 12  # the seven not cached yet, then the uncached source
    assert source.cache.filled() == 12


def test_a_damaged_record_is_decoded_again_and_reported(image_files, tmp_path, decodes):
    source = images(image_files, tmp_path / "cache")
    expected = gather(source)
    values = next((tmp_path / "cache").glob("decoded-*/values.u8"))
    data = bytearray(values.read_bytes())
    data[5 * 8 * 8 * 3 + 10] ^= 0xFF  # one byte of sample 5
    values.write_bytes(bytes(data))
    decodes.clear()
    with pytest.warns(CacheWarning, match=r"1 cached record\(s\) .* \(samples 5\)"):
        np.testing.assert_array_equal(gather(images(image_files, tmp_path / "cache")), expected)
    assert len(decodes) == 1


def test_image_bytes_are_cached_by_their_content(image_files, tmp_path, decodes):
    encoded = [p.read_bytes() for p in image_files]
    expected = gather(ImageBytes(encoded, (8, 8), dtype="uint8"))
    gather(ImageBytes(encoded, (8, 8), dtype="uint8", cache=tmp_path / "cache"))
    encoded[2] = image_files[7].read_bytes()  # other bytes in row 2: not served stale
    decodes.clear()
    again = gather(ImageBytes(encoded, (8, 8), dtype="uint8", cache=tmp_path / "cache"))
    assert len(decodes) == 1
    np.testing.assert_array_equal(again[2], expected[7])
    np.testing.assert_array_equal(np.delete(again, 2, 0), np.delete(expected, 2, 0))


# ------------------------------------------------------------- several processes


def test_processes_filling_one_cache_together_leave_it_whole_and_correct(image_files, tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    orders = [np.random.default_rng(k).permutation(12) for k in range(3)]
    processes = [
        context.Process(
            target=fill_image_cache, args=(image_files, tmp_path / "cache", order, barrier)
        )
        for order in orders
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    source = images(image_files, tmp_path / "cache")
    assert source.cache.filled() == 12
    np.testing.assert_array_equal(gather(source), gather(images(image_files, None)))


@pytest.mark.keras
def test_worker_processes_fill_and_read_the_cache(image_files, tmp_path, start_method, decodes):
    source = images(image_files, tmp_path / "cache")
    ds = MultimodalDataset(
        source, np.arange(12), batch_size=4, seed=1, workers=2, use_multiprocessing=True
    )
    first = [ds[i] for i in range(len(ds))]
    reference = MultimodalDataset(images(image_files, None), np.arange(12), batch_size=4, seed=1)
    for (x, y), (expected_x, expected_y) in zip(
        first, [reference[i] for i in range(3)], strict=True
    ):
        np.testing.assert_array_equal(x, expected_x)
        np.testing.assert_array_equal(y, expected_y)
    assert images(image_files, tmp_path / "cache").cache.filled() == 12


# ------------------------------------------------------------- what cannot be used


def test_a_damaged_or_foreign_meta_file_is_refused_naming_it_and_the_fix(image_files, tmp_path):
    gather(images(image_files, tmp_path / "cache"))
    meta = next((tmp_path / "cache").glob("decoded-*/meta.json"))
    meta.write_text("{not json")
    with pytest.raises(CacheError, match=r"meta.json is damaged .* Delete the folder"):
        images(image_files, tmp_path / "cache")
    meta.write_text('{"format": 1, "count": 3}')
    with pytest.raises(CacheError, match="holds a different cache"):
        images(image_files, tmp_path / "cache")


def test_a_truncated_cache_file_is_refused(image_files, tmp_path):
    gather(images(image_files, tmp_path / "cache"))
    values = next((tmp_path / "cache").glob("decoded-*/values.u8"))
    os.truncate(values, 100)
    with pytest.raises(CacheError, match=r"values.u8 is damaged \(size 100"):
        images(image_files, tmp_path / "cache")


def test_a_full_disk_is_an_error_when_the_source_is_built_and_no_cache_is_left_half_made(
    image_files, tmp_path, monkeypatch
):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(CacheError, match=r"Not enough disk space .* cache=None to train"):
        images(image_files, tmp_path / "cache")
    monkeypatch.undo()
    source = images(image_files, tmp_path / "cache")  # with space, it is made whole
    np.testing.assert_array_equal(gather(source), gather(images(image_files, None)))


def test_a_cache_directory_that_is_not_writable_says_so(image_files, tmp_path, monkeypatch):
    from pathlib import Path

    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(CacheError, match=r"is not writable .* a folder you can write to"):
        images(image_files, tmp_path / "cache")


def test_warnings_stay_quiet_when_the_cache_is_healthy(image_files, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        source = images(image_files, tmp_path / "cache")
        gather(source)
        gather(source)


def test_filling_and_reading_a_cache_keeps_anonymous_memory_far_below_its_size(tmp_path):
    from multimodal_dataset.sources.images.decoded_cache import DecodedCache
    from multimodal_dataset.testing import anonymous_rss_mib

    count, shape = 8192, (64, 64, 4)  # 128 MiB of records
    cache = DecodedCache(tmp_path, {"kind": "test"}, count, shape)
    record = np.empty(shape, np.uint8)
    before = peak = anonymous_rss_mib()
    for sample in range(count):
        record[...] = sample % 251
        cache.store(sample, sample + 1, record)
        if sample % 512 == 0:
            peak = max(peak, anonymous_rss_mib())
    batch = np.empty((64, *shape), np.uint8)
    for start in range(0, count, 64):
        samples = np.arange(start, start + 64)
        assert cache.fetch(samples, (samples + 1).astype(np.uint64), batch).all()
        np.testing.assert_array_equal(batch[:, 0, 0, 0], samples % 251)
        if start % 512 == 0:
            peak = max(peak, anonymous_rss_mib())
    assert peak - before < 32, f"anonymous memory grew by {peak - before:.0f} MiB"


# ------------------------------------- shared slots, planted files, validation (#23)


def two_folds(image_files):
    """Two sources of equal count and preprocessing (k-fold runs): one cache folder."""
    return list(image_files[:6]), list(image_files[6:])


def test_a_record_another_source_is_writing_is_never_served(image_files, tmp_path):
    """The interleaving that served one fold another's image: B wrote its pixels and
    checksum into the shared slot while the key still said A's sample."""
    from multimodal_dataset.sources.images.decoded_cache import identity_key, record_sum

    first, second = two_folds(image_files)
    a, b = images(first, tmp_path / "cache"), images(second, tmp_path / "cache")
    assert a.cache.folder == b.cache.folder  # the same fingerprint: the same slots
    expected_a = gather(a)
    values, keys, sums = a.cache._open()
    assert keys[2] == identity_key(a.identity(2))  # A's sample 2, filled
    pixels_b = gather(images(second, None))[2]
    key_b = identity_key(b.identity(2))
    values[2] = pixels_b.reshape(-1)  # B's values and checksum, A's key not yet replaced
    sums[2] = record_sum(key_b, values[2])
    # Frozen there, the slot looks damaged to A (reported, decoded again): never B's.
    with pytest.warns(CacheWarning, match=r"samples 2\)"):
        np.testing.assert_array_equal(gather(a), expected_a)


def test_sources_sharing_a_cache_folder_only_ever_get_their_own_images(image_files, tmp_path):
    import threading

    first, second = two_folds(image_files)
    expected = [gather(images(first, None)), gather(images(second, None))]
    sources = [images(first, tmp_path / "cache"), images(second, tmp_path / "cache")]
    wrong, stop = [], time.monotonic() + 1.0

    def read(k):
        while time.monotonic() < stop:
            if not np.array_equal(gather(sources[k]), expected[k]):
                wrong.append(k)

    threads = [threading.Thread(target=read, args=(k,)) for k in (0, 1)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not wrong
    assert not [w for w in caught if issubclass(w.category, CacheWarning)]  # no false alarm


@pytest.mark.parametrize("when", ["filled", "new"])
def test_a_link_planted_as_a_cache_file_is_refused_and_nothing_is_written_through_it(
    image_files, tmp_path, when
):
    outside = tmp_path / "outside.bin"
    if when == "filled":
        gather(images(image_files, tmp_path / "cache"))
        values = next((tmp_path / "cache").glob("decoded-*/values.u8"))
    else:
        folder = images(image_files, tmp_path / "probe").cache.folder
        values = tmp_path / "cache" / folder.name / "values.u8"
        values.parent.mkdir(parents=True)
    outside.write_bytes(bytes(len(image_files) * 8 * 8 * 3))
    values.unlink(missing_ok=True)
    values.symlink_to(outside)
    with pytest.raises(CacheError, match=r"not a file of a cache .*symbolic link.* Delete"):
        gather(images(image_files, tmp_path / "cache"))
    assert outside.read_bytes() == bytes(len(image_files) * 8 * 8 * 3)


def test_a_meta_file_that_is_a_pipe_or_huge_is_refused_without_reading_it(image_files, tmp_path):
    gather(images(image_files, tmp_path / "cache"))
    meta = next((tmp_path / "cache").glob("decoded-*/meta.json"))
    meta.unlink()
    os.mkfifo(meta)
    with pytest.raises(CacheError, match=r"meta.json' is not a regular file \(a named pipe"):
        images(image_files, tmp_path / "cache")
    meta.unlink()
    with open(meta, "wb") as sparse:
        sparse.truncate(1 << 30)  # 1 GiB of nothing on disk
    with pytest.raises(CacheError, match=r"meta.json' has 1,073,741,824 bytes, more than"):
        images(image_files, tmp_path / "cache")


def rewrite(path):
    """Another image at the same path, with a new modification time."""
    from PIL import Image

    Image.new("RGB", (30, 40), (1, 2, 3)).save(path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))


@pytest.mark.parametrize(("validation", "decoded_again"), [("run", False), ("epoch", True)])
def test_a_file_rewritten_during_training_is_decoded_again_per_the_validation_policy(
    image_files, tmp_path, validation, decoded_again
):
    source = images(image_files, tmp_path / "cache", cache_validation=validation)
    before = gather(source, epoch=0)
    rewrite(image_files[4])
    after = gather(source, epoch=1)
    assert np.array_equal(after[4], before[4]) is not decoded_again
    np.testing.assert_array_equal(np.delete(after, 4, 0), np.delete(before, 4, 0))
    if decoded_again:
        np.testing.assert_array_equal(after[4], gather(images(image_files, None))[4])


def test_trust_serves_the_filled_cache_without_touching_the_originals(image_files, tmp_path):
    expected = gather(images(image_files, tmp_path / "cache"))
    for path in image_files:  # the originals are offline now
        os.remove(path)
    trusted = images(image_files, tmp_path / "cache", cache_validation="trust")
    np.testing.assert_array_equal(gather(trusted), expected)
    with pytest.raises(Exception, match="does not exist"):
        gather(images(image_files, tmp_path / "cache"))  # "run" checks the files


def test_an_unknown_cache_validation_is_refused_with_the_choices(image_files, tmp_path):
    with pytest.raises(ValueError, match=r"cache_validation.*'run', 'epoch', 'trust'"):
        images(image_files, tmp_path / "cache", cache_validation="always")
