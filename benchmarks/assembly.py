"""Batch assembly, iteration only: ``((img, txt, num), y)`` batches shuffled per sample,
from the same arrays, by every loader a Keras user could pick."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.common import Measurement, Settings, arrays, measure, npy_files

BATCH_SIZES = (32, 256)
Epoch = Callable[[], int]


def numpy_bound(data, batch_size: int) -> Epoch:
    """The physical bound: one fancy-index gather (a copy) per array per batch."""
    (img, txt, num), y = data
    rng = np.random.default_rng(0)

    def epoch() -> int:
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            img[idx], txt[idx], num[idx], y[idx]
        return len(y)

    return epoch


def numpy_bound_memmap(samples: int, batch_size: int) -> Epoch:
    """The same gather from the memory-mapped .npy files: the bound for memory maps."""
    img, txt, num, y = (np.load(p, mmap_mode="r") for p in npy_files(samples))
    return numpy_bound(((img, txt, num), y), batch_size)


def hand_written_pydataset(data, batch_size: int) -> Epoch:
    """What users write today: a PyDataset slicing a shuffled index array per batch."""
    import keras

    (img, txt, num), y = data

    class Seed(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order = np.random.default_rng(0).permutation(len(y))

        def __len__(self):
            return -(-len(y) // batch_size)

        def __getitem__(self, i):
            idx = self.order[i * batch_size : (i + 1) * batch_size]
            return (img[idx], txt[idx], num[idx]), y[idx]

        def on_epoch_end(self):
            np.random.default_rng().shuffle(self.order)

    return pydataset_epoch(Seed())


def pydataset_epoch(ds) -> Epoch:
    def epoch() -> int:
        count = 0
        for i in range(len(ds)):
            count += len(ds[i][1])
        ds.on_epoch_end()
        return count

    return epoch


def multimodal(data, batch_size: int) -> Epoch:
    from multimodal_dataset import MultimodalDataset

    (img, txt, num), y = data
    return pydataset_epoch(MultimodalDataset((img, txt, num), y, batch_size=batch_size, seed=0))


def multimodal_memmap(samples: int, batch_size: int) -> Epoch:
    from multimodal_dataset import MultimodalDataset

    img, txt, num, y = npy_files(samples)
    return pydataset_epoch(MultimodalDataset((img, txt, num), y, batch_size=batch_size, seed=0))


def tf_data(data, batch_size: int) -> Epoch:
    import tensorflow as tf

    n = len(data[1])
    ds = (
        tf.data.Dataset.from_tensor_slices(data)
        .shuffle(n, seed=0)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )

    def epoch() -> int:
        count = 0
        for _, y in ds:
            count += int(y.shape[0])
        return count

    return epoch


def torch_dataloader(data, batch_size: int) -> Epoch:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    (img, txt, num), y = data
    tensors = TensorDataset(*(torch.from_numpy(a) for a in (img, txt, num, y)))
    loader = DataLoader(tensors, batch_size=batch_size, shuffle=True)

    def epoch() -> int:
        count = 0
        for *_, y_batch in loader:
            count += len(y_batch)
        return count

    return epoch


def grain_map_dataset(data, batch_size: int) -> Epoch:
    import grain

    (img, txt, num), y = data

    class Source:
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return (img[i], txt[i], num[i]), y[i]

    ds = grain.MapDataset.source(Source()).shuffle(seed=0).batch(batch_size)

    def epoch() -> int:
        count = 0
        for _, y_batch in ds:
            count += len(y_batch)
        return count

    return epoch


# Loaders measured in every backend's session, and the peers each backend's venv has.
OURS = {
    "numpy gather (bound)": numpy_bound,
    "hand-written PyDataset": hand_written_pydataset,
    "MultimodalDataset": multimodal,
}
PEERS = {
    "tensorflow": {"tf.data": tf_data},
    "torch": {"torch DataLoader": torch_dataloader},
    "jax": {"grain MapDataset": grain_map_dataset},
}


def run(backend: str, settings: Settings) -> list[Measurement]:
    data = arrays(settings.samples)
    results = []
    for batch_size in BATCH_SIZES:
        loaders = {name: make(data, batch_size) for name, make in OURS.items()}
        loaders["numpy gather, memory-mapped .npy (bound)"] = numpy_bound_memmap(
            settings.samples, batch_size
        )
        loaders["MultimodalDataset (memory-mapped .npy)"] = multimodal_memmap(
            settings.samples, batch_size
        )
        for name, make in PEERS[backend].items():
            loaders[name] = make(data, batch_size)
        results += measure(loaders, "assembly", backend, batch_size, settings.repetitions)
    return results
