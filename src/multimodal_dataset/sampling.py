"""Which samples make up batch ``i`` of epoch ``e``: a pure function of ``(seed, epoch)``.

The order of an epoch is computed from nothing but the seed, the epoch number and the
sample count, so every worker thread or process, every backend and every restarted run
computes the same batches without sharing any state. Shuffling is per sample (Keras's own
``fit(shuffle=True)`` only reorders whole batches).
"""

from __future__ import annotations

import math
import secrets
import threading
from typing import Any

import numpy as np

MAX_SEED = 2**63 - 1


def draw_seed() -> int:
    """Draws a fresh 32-bit seed from the operating system's entropy."""
    return secrets.randbits(32)


def check_seed(seed: Any) -> int:
    """Returns ``seed`` as an int, or raises if it is not a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            f"seed must be a non-negative integer or None (to draw one); got {seed!r} of "
            f"type {type(seed).__name__}."
        )
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be an integer between 0 and 2**63-1; got seed={seed}.")
    return int(seed)


def epoch_order(num_samples: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The order in which an epoch visits the samples.

    Args:
        num_samples: How many samples the dataset has.
        seed: The dataset's seed.
        epoch: The epoch number (0 for the first).
        shuffle: Whether to shuffle; if False the order is ``0, 1, ..., n-1`` every epoch.

    Returns:
        A permutation of ``range(num_samples)`` as an ``int64`` array.
    """
    if not shuffle:
        return np.arange(num_samples, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch])))
    return rng.permutation(num_samples).astype(np.int64, copy=False)


def count_batches(num_samples: int, batch_size: int, drop_remainder: bool) -> int:
    """The number of batches per epoch."""
    if drop_remainder:
        return num_samples // batch_size
    return math.ceil(num_samples / batch_size)


class Sampler:
    """Maps ``(epoch, batch index)`` to the sample indices of that batch.

    Holds only plain numbers, so it pickles small; the order of the current epoch is
    cached and recomputed on demand in any process.

    Args:
        num_samples: How many samples the dataset has.
        batch_size: Samples per batch.
        shuffle: Whether each epoch visits the samples in a new random order.
        seed: The seed the order is derived from.
        drop_remainder: Whether a last, partial batch is dropped.
    """

    def __init__(
        self, num_samples: int, batch_size: int, shuffle: bool, seed: int, drop_remainder: bool
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.num_batches = count_batches(num_samples, batch_size, drop_remainder)
        self._cache: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def order(self, epoch: int) -> np.ndarray:
        """The (cached) sample order of ``epoch``."""
        cache = self._cache
        if cache is not None and cache[0] == epoch:
            return cache[1]
        with self._lock:
            cache = self._cache
            if cache is None or cache[0] != epoch:
                cache = (epoch, epoch_order(self.num_samples, self.seed, epoch, self.shuffle))
                self._cache = cache
        return cache[1]

    def batch(self, epoch: int, index: int) -> np.ndarray:
        """The sample indices of batch ``index`` of ``epoch`` (``0 <= index < num_batches``)."""
        start = index * self.batch_size
        return self.order(epoch)[start : start + self.batch_size]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
