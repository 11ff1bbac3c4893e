"""The order in which an epoch visits the samples: a pure function of ``(seed, epoch)``.

The order of an epoch is computed from nothing but the seed, the epoch number and the
sample count, so every worker thread or process, every backend and every restarted run
computes the same batches without sharing any state; `IndexShuffle` gives the sample at
any position without building the permutation. Shuffling is per sample (Keras's own
``fit(shuffle=True)`` only reorders whole batches); `group_window` regroups a window of
a shuffled order into steps of similar length.
"""

from __future__ import annotations

import math
import secrets
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


#: How many rounds the index shuffle's Feistel network runs (4 make a pseudo-random
#: permutation for a strong round function; 6 for margin).
SHUFFLE_ROUNDS = 6

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective 64-bit mix, applied elementwise (wrapping)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    mixed: np.ndarray = z ^ (z >> _S31)
    return mixed


class IndexShuffle:
    """A seeded bijection on ``[0, n)``: the sample at any position of an epoch's shuffled
    order, computed for those positions alone, with no permutation array.

    A balanced Feistel network over the smallest even number of bits that covers ``n``
    (its round function SplitMix64's finaliser, keyed per round from ``(seed, epoch)``)
    permutes ``[0, 2^bits)``; positions it maps past ``n`` are mapped again until they
    land inside (cycle walking: fewer than 4 rounds on average, since ``2^bits < 4n``).
    Every sample appears exactly once per epoch, the order is a pure function of
    ``(seed, epoch)``, and evaluating ``k`` positions costs O(k) time and memory at any
    ``n``: the same approach as grain's index shuffle.
    """

    def __init__(self, num_samples: int, seed: int, epoch: int) -> None:
        self.num_samples = num_samples
        bits = max(2, (num_samples - 1).bit_length())
        self._half = np.uint64((bits + 1) // 2)
        self._mask = np.uint64((1 << int(self._half)) - 1)
        sequence = np.random.SeedSequence([seed, epoch])
        self._keys = sequence.generate_state(SHUFFLE_ROUNDS, dtype=np.uint64)

    def _permute(self, x: np.ndarray) -> np.ndarray:
        half, mask = self._half, self._mask
        left, right = x >> half, x & mask
        for key in self._keys:
            left, right = right, left ^ (_mix(right ^ key) & mask)
        return (left << half) | right

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """The samples at ``positions`` (each in ``[0, n)``) of the shuffled order."""
        samples = self._permute(np.asarray(positions, dtype=np.uint64))
        outside = np.flatnonzero(samples >= self.num_samples)
        while outside.size:
            samples[outside] = self._permute(samples[outside])
            outside = outside[samples[outside] >= self.num_samples]
        return samples.astype(np.int64)


def epoch_order(num_samples: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The whole order in which an epoch visits the samples, as one array.

    Batches never build it (they evaluate `IndexShuffle` at their own positions); it is
    the reference the tests compare them with.

    Args:
        num_samples: How many samples the dataset has.
        seed: The dataset's seed.
        epoch: The epoch number (0 for the first).
        shuffle: Whether to shuffle; if False the order is ``0, 1, ..., n-1`` every epoch.

    Returns:
        A permutation of ``range(num_samples)`` as an ``int64`` array.
    """
    positions = np.arange(num_samples, dtype=np.int64)
    return IndexShuffle(num_samples, seed, epoch)(positions) if shuffle else positions


#: ``group_by_length`` groups the samples by padded length within windows of this many steps.
GROUP_WINDOW_STEPS = 32


def group_window(
    samples: np.ndarray, widths: np.ndarray, step: int, seed: int, epoch: int, window: int
) -> np.ndarray:
    """The steps of window ``window`` of a length-grouped epoch, as rows of ``step``
    samples.

    ``samples`` are the window's samples in shuffled order (a whole number of steps) and
    ``widths`` each sample's padded length (or its bucket's rank). They are sorted by
    width, stably (samples of one width stay in shuffled order), cut into steps, and the
    steps shuffled, with a generator seeded by ``(seed, epoch, window)``. So every step
    holds samples of one width but the few where one width's samples end and the next
    one's begin (fewer than the number of widths per window), and a window is computed
    from its own samples alone: a pure function of its arguments, at a cost that does
    not depend on the epoch's length.
    """
    grid = samples[np.argsort(widths[samples], kind="stable")].reshape(-1, step)
    sequence = np.random.SeedSequence([seed, epoch, 1, window])
    return grid[np.random.Generator(np.random.PCG64(sequence)).permutation(len(grid))]


def count_batches(num_samples: int, batch_size: int, drop_remainder: bool) -> int:
    """The number of batches per epoch."""
    if drop_remainder:
        return num_samples // batch_size
    return math.ceil(num_samples / batch_size)
