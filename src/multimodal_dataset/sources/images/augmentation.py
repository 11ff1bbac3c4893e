"""Seeded image augmentation whose every random draw is a pure function of
``(seed, epoch, sample index)``.

No random generator carries state from batch to batch: each draw hashes the dataset's
seed, the epoch, the sample index and the kind of draw (counter-based, SplitMix64). So a
sample gets the same flip and crop whichever batch, worker thread, worker process or
backend reads it, a resumed run repeats an interrupted one, and each epoch draws anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from multimodal_dataset._utils.checks import check_choice, check_int

Flip = Literal["horizontal", "vertical", "horizontal_and_vertical"]

# Streams: one per kind of draw, so that draws are independent of each other.
_FLIP_H, _FLIP_V, _CROP_Y, _CROP_X = range(4)


def _mix(x: Any) -> Any:
    """SplitMix64's finaliser: a bijective scramble of 64-bit integers."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform(seed: int, epoch: int, indices: np.ndarray, stream: int) -> np.ndarray:
    """One float in ``[0, 1)`` per sample index, a pure function of all four arguments.

    Args:
        seed: The dataset's seed (0 to 2**63-1).
        epoch: The epoch number.
        indices: Sample indices (any integer array).
        stream: Which kind of draw (keeps different draws independent).

    Returns:
        A ``float64`` array shaped like ``indices``.
    """
    with np.errstate(over="ignore"):
        key = _mix(np.array([seed], dtype=np.uint64))
        key = _mix(key ^ np.uint64(epoch))
        key = _mix(key ^ np.uint64(stream))
        bits = _mix(key ^ np.asarray(indices).astype(np.uint64))
    # The top 53 bits, as a double in [0, 1).
    draws: np.ndarray = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return draws


@dataclass(frozen=True)
class ImageAugmentation:
    """Random flips and random crops of zero- or reflect-padded images, per sample.

    Applied to ``(batch, height, width, channels)`` batches by `ImageFiles` (pass
    ``augment=ImageAugmentation(...)``) and by `from_table` to the training split only.
    Augment training data only: an inference or validation dataset should see the images
    as they are.

    Example:

    ```python
    aug = ImageAugmentation(flip="horizontal", crop_padding=4)
    images = ImageFiles(paths, size=(64, 64), augment=aug)
    ```

    Attributes:
        flip: ``"horizontal"`` (mirror left-right with probability 1/2),
            ``"vertical"``, ``"horizontal_and_vertical"`` (each independently), or None.
        crop_padding: Pad each side by this many pixels, then crop a window of the
            original size at a random offset (a shift of up to ``crop_padding`` pixels).
            0 disables cropping.
        fill_mode: How padding is filled: ``"constant"`` (zeros) or ``"reflect"``.
    """

    flip: Flip | None = "horizontal"
    crop_padding: int = 0
    fill_mode: Literal["constant", "reflect"] = "constant"

    def __post_init__(self) -> None:
        check_choice(self.flip, "flip", ("horizontal", "vertical", "horizontal_and_vertical", None))
        check_int(self.crop_padding, "crop_padding", minimum=0, what="pixels")
        check_choice(self.fill_mode, "fill_mode", ("constant", "reflect"))

    def apply(self, images: np.ndarray, indices: np.ndarray, seed: int, epoch: int) -> np.ndarray:
        """Augments a batch: sample ``k`` of ``images`` is dataset sample ``indices[k]``.

        One vectorized gather does the crop and the flips of the whole batch.

        Args:
            images: A ``(batch, height, width, channels)`` array.
            indices: The dataset sample index of each image.
            seed: The dataset's seed.
            epoch: The epoch number.

        Returns:
            A new array of the same shape and dtype.
        """
        b, h, w = images.shape[:3]
        p = int(self.crop_padding)
        if self.flip is None and p == 0:
            return images
        if p:
            if self.fill_mode == "reflect" and p >= min(h, w):
                raise ValueError(
                    f"crop_padding={p} with fill_mode='reflect' needs images larger than "
                    f"{p} pixels per side; got {h}x{w}. Use a smaller crop_padding."
                )
            pad = ((0, 0), (p, p), (p, p), (0, 0))
            images = np.pad(images, pad, mode=self.fill_mode)
        dy = self._offsets(seed, epoch, indices, _CROP_Y, p)
        dx = self._offsets(seed, epoch, indices, _CROP_X, p)
        rows = dy[:, None] + np.arange(h)
        cols = dx[:, None] + np.arange(w)
        if self.flip in ("horizontal", "horizontal_and_vertical"):
            flip = uniform(seed, epoch, indices, _FLIP_H) < 0.5
            cols[flip] = cols[flip, ::-1]
        if self.flip in ("vertical", "horizontal_and_vertical"):
            flip = uniform(seed, epoch, indices, _FLIP_V) < 0.5
            rows[flip] = rows[flip, ::-1]
        out: np.ndarray = images[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]
        return out

    @staticmethod
    def _offsets(seed: int, epoch: int, indices: np.ndarray, stream: int, p: int) -> Any:
        if p == 0:
            return np.zeros(len(indices), dtype=np.int64)
        return (uniform(seed, epoch, indices, stream) * (2 * p + 1)).astype(np.int64)
