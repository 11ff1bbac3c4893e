"""A small real multimodal dataset on disk: JPEG images, captions, numbers and a manifest.

Each sample carries one hidden bit per modality, drawn independently:

- image: the colour of a shape drawn with Pillow (warm or cool), at a random place and size
  on a noisy background, in a JPEG of random size;
- caption: one mood word (calm or stormy) among words that carry no signal;
- numbers: the sign of a fixed linear combination of five readings, stored in their own
  units (so standardising matters).

The label is the majority of the three bits, so each modality alone predicts it 75% of the
time and all three together 100%: a model must read images, text and numbers to do well.

It is written as JPEG files and a ``manifest.csv`` of their paths; or, as the Hugging Face
Hub stores image datasets, as Parquet shards with the JPEG bytes inside
(``data/train-00000-of-00002.parquet``, image column ``{bytes, path}``); or as WebDataset
tar shards (``shards/00000.tar``: ``00000.jpg``, ``.txt``, ``.cls``, ``.json``).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from multimodal_dataset._utils.checks import check_choice, check_int
from multimodal_dataset._utils.optional import optional_import

MANIFEST = "manifest.csv"
PARQUET_FOLDER = "data"
SHARD_FOLDER = "shards"
FORMATS = ("csv", "parquet", "webdataset")
#: Rows per Parquet shard of the example (the Hub's shards hold a few hundred MB).
ROWS_PER_SHARD = 1000
IMAGE_COLUMN = "image"
TEXT_COLUMN = "caption"
NUMERIC_COLUMNS = ("sensor_1", "sensor_2", "sensor_3", "sensor_4", "sensor_5")
TARGET_COLUMN = "label"

_WEIGHTS = np.array([1.0, -0.8, 0.6, 0.0, 0.3])
_UNITS = [(20.0, 5.0), (1013.0, 12.0), (0.5, 0.2), (300.0, 80.0), (-4.0, 1.5)]
_CALM = ("calm", "gentle", "quiet", "serene", "peaceful", "still")
_STORMY = ("stormy", "wild", "harsh", "restless", "turbulent", "fierce")
_SHAPES = ("circle", "square", "triangle", "blob", "shape")
_FILLER = ("a", "the", "small", "large", "picture", "of", "with", "on", "background", "seen")


def make_example(
    directory: str | os.PathLike[str],
    samples: int = 2000,
    *,
    seed: int = 0,
    format: str = "csv",
) -> Path:
    """Writes ``samples`` JPEG images, their captions, numbers and labels.

    Args:
        directory: Folder to write into (created if needed).
        samples: Number of samples (rows).
        seed: Seed of everything drawn. Both formats hold the same samples.
        format: ``"csv"``: JPEG files in ``images/`` and ``manifest.csv`` of their paths;
            ``"parquet"``: Parquet shards in ``data/`` (``train-00000-of-00002.parquet``,
            at most 1000 rows each) whose ``image`` column holds ``{bytes, path}``
            structs, as Hugging Face ``datasets`` writes them (needs ``pyarrow``);
            ``"webdataset"``: tar shards in ``shards/`` (at most 1000 samples each) of
            ``<key>.jpg``, ``.txt`` (the caption), ``.cls`` (the label) and ``.json``
            (``{"sensor_1": ...}``), for `from_webdataset`.

    Returns:
        What to pass to `from_table`: the manifest, or the ``data`` folder; or the
        ``shards`` folder for `from_webdataset`. The columns are ``image``, ``caption``,
        ``sensor_1`` ... ``sensor_5`` and ``label``.
    """
    check_choice(format, "format", FORMATS)
    image_module = optional_import("PIL.Image", "Writing the example images")
    draw_module = optional_import("PIL.ImageDraw", "Writing the example images")
    check_int(samples, "samples")
    root = Path(directory)
    if format == "csv":
        (root / "images").mkdir(parents=True, exist_ok=True)
    images: list[bytes] = []
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(samples, 3))
    labels = (bits.sum(axis=1) >= 2).astype(int)
    numbers = _numbers(rng, bits[:, 2])
    rows = []
    for i in range(samples):
        width, height = (int(v) for v in rng.integers(48, 97, size=2))
        noise = rng.normal(128, 30, size=(height, width, 3)).clip(0, 255).astype(np.uint8)
        image = image_module.fromarray(noise)
        hue = rng.uniform(0.0, 0.12) if bits[i, 0] else rng.uniform(0.45, 0.7)
        colour = _hsv_to_rgb(hue, rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0))
        size = rng.uniform(0.4, 0.8) * min(width, height)
        x0, y0 = rng.uniform(0, width - size), rng.uniform(0, height - size)
        box = (x0, y0, x0 + size, y0 + size)
        draw = draw_module.Draw(image)
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(x0, y0 + size), (x0 + size, y0 + size), (x0 + size / 2, y0)], colour)
        name = f"images/{i:05d}.jpg"
        encoded = io.BytesIO()
        image.save(encoded, "JPEG", quality=90)
        images.append(encoded.getvalue())
        if format == "csv":
            (root / name).write_bytes(images[-1])
        mood = rng.choice(_CALM if bits[i, 1] else _STORMY)
        words = [*rng.choice(_FILLER, size=int(rng.integers(2, 6))), str(mood)]
        words.insert(int(rng.integers(0, len(words))), str(rng.choice(_SHAPES)))
        rows.append([name, " ".join(words), *(f"{v:.4f}" for v in numbers[i]), labels[i]])
    if format == "parquet":
        return _write_parquet(root / PARQUET_FOLDER, rows, images, numbers)
    if format == "webdataset":
        return _write_shards(root / SHARD_FOLDER, rows, images)
    manifest = root / MANIFEST
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([IMAGE_COLUMN, TEXT_COLUMN, *NUMERIC_COLUMNS, TARGET_COLUMN])
        writer.writerows(rows)
    return manifest


def _write_parquet(
    folder: Path, rows: list[list[Any]], images: list[bytes], numbers: np.ndarray
) -> Path:
    pa = optional_import("pyarrow", "Writing the example as Parquet")
    pq = optional_import("pyarrow.parquet", "Writing the example as Parquet")
    folder.mkdir(parents=True, exist_ok=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    shards = max(1, -(-len(rows) // ROWS_PER_SHARD))
    bounds = np.linspace(0, len(rows), shards + 1).astype(int)
    for k in range(shards):
        part = slice(bounds[k], bounds[k + 1])
        columns = {
            IMAGE_COLUMN: pa.array(
                [
                    {"bytes": b, "path": r[0].split("/")[-1]}
                    for b, r in zip(images[part], rows[part], strict=True)
                ],
                image_type,
            ),
            TEXT_COLUMN: pa.array([r[1] for r in rows[part]], pa.string()),
            **{
                name: pa.array(numbers[part, j].round(4), pa.float64())
                for j, name in enumerate(NUMERIC_COLUMNS)
            },
            TARGET_COLUMN: pa.array([int(r[-1]) for r in rows[part]], pa.int64()),
        }
        # Row groups of 100 rows, as datasets writes image tables.
        pq.write_table(
            pa.table(columns), folder / f"train-{k:05d}-of-{shards:05d}.parquet", row_group_size=100
        )
    return folder


def _write_shards(folder: Path, rows: list[list[Any]], images: list[bytes]) -> Path:
    import json
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    shards = max(1, -(-len(rows) // ROWS_PER_SHARD))
    bounds = np.linspace(0, len(rows), shards + 1).astype(int)
    for k in range(shards):
        with tarfile.open(folder / f"{k:05d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(bounds[k], bounds[k + 1]):
                caption, *numbers, label = rows[i][1:]
                fields = {n: float(v) for n, v in zip(NUMERIC_COLUMNS, numbers, strict=True)}
                members = {
                    "jpg": images[i],
                    "txt": caption.encode(),
                    "cls": str(label).encode(),
                    "json": json.dumps(fields).encode(),
                }
                for extension, data in members.items():
                    info = tarfile.TarInfo(f"{i:05d}.{extension}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o444
                    tar.addfile(info, io.BytesIO(data))
    return folder


def _numbers(rng: np.random.Generator, bits: np.ndarray) -> np.ndarray:
    """Standard normal readings whose weighted sum has the sign of ``bits``, in units."""
    z = rng.normal(size=(len(bits), len(_WEIGHTS)))
    score = z @ _WEIGHTS
    wrong = (score > 0) != bits.astype(bool)
    # Flipping the weighted coordinates flips the score's sign without changing its size.
    z[wrong] -= 2 * np.outer(score[wrong], _WEIGHTS) / (_WEIGHTS @ _WEIGHTS)
    mean, scale = np.array(_UNITS).T
    readings: np.ndarray = z * scale + mean
    return readings


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255), int(g * 255), int(b * 255)
