"""The dataset's API and the errors it raises for bad input, with names and numbers."""

from __future__ import annotations

import numpy as np
import pytest

from multimodal_dataset import MultimodalDataset

pytestmark = pytest.mark.keras


def test_len_counts_batches_and_the_last_batch_may_be_partial(arrays):
    (img, txt, num), y = arrays
    ds = MultimodalDataset((img, txt, num), y, batch_size=4)
    assert len(ds) == 3
    assert [len(ds[i][1]) for i in range(3)] == [4, 4, 2]
    assert ds.num_samples == 10 and ds.batch_size == 4


def test_indexing_past_the_end_raises_index_error_so_iteration_stops(arrays):
    (img, _, _), y = arrays
    ds = MultimodalDataset(img, y, batch_size=4)
    with pytest.raises(IndexError, match=r"Batch index 3 is out of range: this dataset has 3"):
        ds[len(ds)]
    with pytest.raises(IndexError):
        ds[-4]
    np.testing.assert_array_equal(ds[-1][1], ds[2][1])
    assert len(list(ds)) == 3


def test_a_non_integer_batch_index_is_a_type_error(arrays):
    (img, _, _), y = arrays
    with pytest.raises(TypeError, match=r"Batch indices must be integers; got 1\.5"):
        MultimodalDataset(img, y, batch_size=4)[1.5]


def test_on_epoch_end_advances_the_epoch(arrays):
    (img, _, _), y = arrays
    ds = MultimodalDataset(img, y, batch_size=4, seed=0)
    first = ds.batch_indices(0)
    ds.on_epoch_end()
    assert ds.epoch == 1
    assert not np.array_equal(first, ds.batch_indices(0))


def test_repr_shows_arrays_sizes_and_seed(arrays):
    (img, txt, num), y = arrays
    text = repr(MultimodalDataset((img, txt, num), y, batch_size=4, seed=7))
    assert "inputs[1]: (6,) int32" in text and "10 samples" in text and "seed=7" in text


def test_workers_run_in_the_dataset_and_keras_reads_it_from_its_main_thread(arrays):
    (img, _, _), y = arrays
    ds = MultimodalDataset(img, y, workers=3, use_multiprocessing=True, max_queue_size=4)
    assert (ds.num_workers, ds.use_processes) == (3, True)
    assert (ds.workers, ds.use_multiprocessing, ds.max_queue_size) == (1, False, 4)


@pytest.mark.parametrize("workers", [0, -1, 1.5])
def test_workers_must_be_a_positive_integer(arrays, workers):
    (img, _, _), y = arrays
    with pytest.raises(ValueError, match=f"got workers={workers}"):
        MultimodalDataset(img, y, workers=workers)


def test_unequal_lengths_name_every_input_and_its_length(arrays):
    (img, txt, num), y = arrays
    with pytest.raises(ValueError, match="same number of samples") as info:
        MultimodalDataset({"image": img, "text": txt[:7], "numeric": num}, y[:9])
    message = str(info.value)
    for part in ["inputs['image'] has 10", "inputs['text'] has 7", "targets has 9"]:
        assert part in message


@pytest.mark.parametrize(
    ("targets", "weights", "expected"),
    [
        (np.zeros(8), None, "targets has 8"),
        (np.zeros(10), np.ones(12), "sample_weights has 12"),
        ((np.zeros(10), np.zeros(3)), None, "targets[1] has 3"),
    ],
)
def test_targets_or_weights_of_the_wrong_length_are_named(arrays, targets, weights, expected):
    (img, txt, num), _ = arrays
    with pytest.raises(ValueError) as info:
        MultimodalDataset((img, txt, num), targets, weights)
    assert expected in str(info.value) and "inputs[0] has 10" in str(info.value)


def test_zero_samples_is_an_error():
    with pytest.raises(ValueError, match=r"zero samples \(inputs\[0\], inputs\[1\] are empty\)"):
        MultimodalDataset((np.zeros((0, 3)), np.zeros((0, 2))))


@pytest.mark.parametrize(
    ("batch_size", "error", "match"),
    [
        (0, ValueError, "got batch_size=0"),
        (-3, ValueError, "got batch_size=-3"),
        (2.5, TypeError, "got batch_size=2.5 of type float"),
        ("32", TypeError, "got batch_size='32' of type str"),
        (True, TypeError, "got batch_size=True of type bool"),
    ],
)
def test_batch_size_must_be_a_positive_integer(arrays, batch_size, error, match):
    (img, _, _), y = arrays
    with pytest.raises(error, match=match):
        MultimodalDataset(img, y, batch_size=batch_size)


def test_a_zero_dimensional_array_is_named():
    with pytest.raises(ValueError, match=r"inputs\[1\] is a 0-d array"):
        MultimodalDataset((np.zeros((4, 2)), np.float32(3.0)))


def test_sample_weights_need_targets(arrays):
    (img, _, _), _ = arrays
    with pytest.raises(ValueError, match="sample_weights were given without targets"):
        MultimodalDataset(img, None, np.ones(10))


def test_weights_that_look_like_an_input_point_at_the_flat_argument_trap(arrays):
    (img, txt, _), y = arrays
    with pytest.raises(ValueError, match=r"shape \(10, 4, 4, 3\).*MultimodalDataset\(\(a, b, c\)"):
        MultimodalDataset(txt, y, img)


def test_nested_structures_are_rejected_with_the_path():
    with pytest.raises(TypeError, match=r"inputs\[1\] is a nested tuple"):
        MultimodalDataset((np.zeros(4), (np.zeros(4), np.zeros(4))))


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_seed_out_of_range_is_an_error(arrays, seed):
    (img, _, _), y = arrays
    with pytest.raises(ValueError, match=f"got seed={seed}"):
        MultimodalDataset(img, y, seed=seed)


def test_python_lists_of_numbers_are_one_array_and_lists_of_arrays_are_inputs():
    single = MultimodalDataset([[1.0, 2.0], [3.0, 4.0]], [0, 1], batch_size=2, shuffle=False)
    assert single[0][0].shape == (2, 2)
    several = MultimodalDataset([np.zeros((2, 3)), np.ones((2, 1))], [0, 1], batch_size=2)
    assert type(several[0][0]) is tuple and len(several[0][0]) == 2
