"""Draws the documentation's pictures: ``python -m tools.pictures`` (writes ``docs/images/*.png``).

``docs/images/show_batch.png``: ``ds.show_batch(8)`` of the demo's example data (the training
dataset of `from_table` with a flip-and-crop augmentation and bucketed captions).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def show_batch(path: Path = ROOT / "docs" / "images" / "show_batch.png") -> Path:
    from multimodal_dataset import ImageAugmentation, from_table
    from multimodal_dataset.example import NUMERIC_COLUMNS, make_example

    with tempfile.TemporaryDirectory() as folder:
        manifest = make_example(folder, 400, seed=0)
        train, _ = from_table(
            manifest,
            image="image",
            text="caption",
            numeric=NUMERIC_COLUMNS[:3],
            target="label",
            image_size=(64, 64),
            text_buckets=(8, 16, 32),
            max_tokens=16,  # a small vocabulary, so that some words show as [UNK]
            augment=ImageAugmentation(flip="horizontal", crop_padding=6),
            batch_size=8,
            seed=0,
        )
        path.parent.mkdir(exist_ok=True)
        train.show_batch(8, path=path)
    return path


if __name__ == "__main__":
    print(f"wrote {show_batch()}")
