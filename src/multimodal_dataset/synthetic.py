"""A learnable synthetic multimodal task whose label needs all three modalities.

Each sample carries three hidden bits, one per modality:

- image: a coloured square at a random place on a noisy background, reddish for 1 and
  bluish for 0;
- text: a padded sequence of token ids containing three "signal" tokens from ids 10-19
  for 1 and from ids 20-29 for 0, among random filler ids;
- numeric: five standard-normal features whose fixed linear combination is positive for 1.

The label is the majority of the three bits, so a model that reads every modality can
reach 100% accuracy, and one blind to any single modality is capped near 75%.
"""

from __future__ import annotations

import numpy as np

NUMERIC_WEIGHTS = np.array([1.0, -0.8, 0.6, 0.0, 0.3])
PAD_ID = 0
OOV_ID = 1
_SIGNAL_TOKENS = 3


def make_multimodal(
    num_samples: int,
    *,
    image_size: int = 32,
    text_length: int = 20,
    vocab_size: int = 1000,
    numeric_features: int = 5,
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Generates ``((images, token_ids, numbers), labels)``.

    Args:
        num_samples: How many samples to make.
        image_size: Height and width of the square RGB images.
        text_length: Length of each padded token-id sequence (at least 8).
        vocab_size: Number of token ids (at least 40); 0 is padding.
        numeric_features: Numeric features per sample (at least 5).
        seed: Seed of the generator; the same seed gives the same data.

    Returns:
        ``images`` float32 ``(n, image_size, image_size, 3)`` in [0, 1], ``token_ids`` int32
        ``(n, text_length)``, ``numbers`` float32 ``(n, numeric_features)`` and ``labels``
        int32 ``(n,)`` in {0, 1}.
    """
    if text_length < 8 or vocab_size < 40 or numeric_features < len(NUMERIC_WEIGHTS):
        raise ValueError(
            f"make_multimodal needs text_length >= 8, vocab_size >= 40 and numeric_features "
            f">= {len(NUMERIC_WEIGHTS)}; got text_length={text_length}, "
            f"vocab_size={vocab_size}, numeric_features={numeric_features}."
        )
    rng = np.random.default_rng(seed)
    n = num_samples
    bits = rng.integers(0, 2, size=(3, n))
    numbers = rng.standard_normal((n, numeric_features)).astype(np.float32)
    # Resample the numeric bit's sign so that it carries bits[2] with a clear margin.
    score = numbers[:, : len(NUMERIC_WEIGHTS)] @ NUMERIC_WEIGHTS
    flip = (score > 0) != bits[2].astype(bool)
    numbers[flip, : len(NUMERIC_WEIGHTS)] *= -1
    labels = (bits.sum(axis=0) >= 2).astype(np.int32)
    return (
        (_images(rng, bits[0], image_size), _texts(rng, bits[1], text_length, vocab_size), numbers),
        labels,
    )


def _images(rng: np.random.Generator, bit: np.ndarray, size: int) -> np.ndarray:
    n = len(bit)
    images = rng.uniform(0.0, 0.3, size=(n, size, size, 3)).astype(np.float32)
    side = rng.integers(size // 4, size // 2 + 1, size=n)
    top = rng.integers(0, size - side + 1)
    left = rng.integers(0, size - side + 1)
    rows = np.arange(size)
    inside_rows = (rows >= top[:, None]) & (rows < (top + side)[:, None])
    inside_cols = (rows >= left[:, None]) & (rows < (left + side)[:, None])
    mask = inside_rows[:, :, None] & inside_cols[:, None, :]
    colour = np.where(bit[:, None] == 1, [0.9, 0.2, 0.2], [0.2, 0.2, 0.9]).astype(np.float32)
    return np.where(mask[..., None], colour[:, None, None, :], images)


def _texts(rng: np.random.Generator, bit: np.ndarray, length: int, vocab_size: int) -> np.ndarray:
    n = len(bit)
    tokens = rng.integers(30, vocab_size, size=(n, length))
    lengths = rng.integers(length // 2, length + 1, size=n)
    positions = (rng.random((n, _SIGNAL_TOKENS)) * lengths[:, None]).astype(np.int64)
    signal = np.where(bit[:, None] == 1, 10, 20) + rng.integers(0, 10, size=(n, _SIGNAL_TOKENS))
    np.put_along_axis(tokens, positions, signal, axis=1)
    tokens[np.arange(length)[None, :] >= lengths[:, None]] = PAD_ID
    return tokens.astype(np.int32)
