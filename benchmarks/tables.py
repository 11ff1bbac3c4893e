"""Images inside a table: 256x256 JPEGs embedded in a Parquet file as ``{bytes, path}``
structs (the Hugging Face layout), decoded to 64x64, batches of 32, shuffled per sample.

Loaders: `from_table` (ImageBytes, from the memory-mapped Arrow cache it converts the
Parquet image column to once); the same JPEGs as files through ImageFiles; Hugging Face
``datasets`` with ``with_format("numpy")`` and the same decoder in a hand-written
PyDataset; and, on TensorFlow, ``datasets.Dataset.to_tf_dataset`` with that decode in its
collate function. Also timed: the one-time conversion of the Parquet image column.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.assembly import Epoch, pydataset_epoch
from benchmarks.common import DATA, Measurement, Settings, jpeg_folder, measure, summarize
from benchmarks.images import BATCH_SIZE, IMAGE_SIZE, multimodal_images


def parquet_of(folder) -> tuple[str, list[int]]:
    """The JPEGs of ``folder`` as one Parquet file with embedded bytes (written once)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted(folder.glob("class_*/*.jpg"))
    labels = [int(p.parent.name[-1]) for p in paths]
    target = folder.with_suffix(".parquet")
    if not target.exists():
        image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        images = pa.array([{"bytes": p.read_bytes(), "path": p.name} for p in paths], image_type)
        table = pa.table({"image": images, "label": pa.array(labels, pa.int64())})
        pq.write_table(table, str(target) + ".tmp", row_group_size=100)  # as datasets does
        (target.parent / (target.name + ".tmp")).rename(target)
    return str(target), labels


def parquet_dataset(path: str, **dataset_kwargs):
    """The training dataset of ``from_table`` over the whole Parquet file."""
    from multimodal_dataset import from_table

    train, _ = from_table(
        path,
        image="image",
        target="label",
        image_size=IMAGE_SIZE,
        validation_split=0,
        batch_size=BATCH_SIZE,
        seed=0,
        cache_dir=DATA / "cache",
        **dataset_kwargs,
    )
    return train


def from_parquet(path: str) -> Epoch:
    return pydataset_epoch(parquet_dataset(path))


def hugging_face(path: str):
    import datasets

    table = datasets.Dataset.from_parquet(path, cache_dir=str(DATA / "hf_cache"))
    return table.cast_column("image", datasets.Image(decode=False))


def decode_all(cells) -> np.ndarray:
    from multimodal_dataset.sources.images.decoding import ImageDecoder

    decoder = ImageDecoder(IMAGE_SIZE, "rgb", "bilinear", False)
    images = np.stack([decoder.decode(cell["bytes"]) for cell in cells])
    return np.multiply(images, np.float32(1 / 255), dtype=np.float32)


def datasets_pydataset(path: str) -> Epoch:
    """What a user writes with datasets today: numpy format, decode in __getitem__."""
    import keras

    table = hugging_face(path).with_format("numpy")

    class FromHub(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order = np.random.default_rng(0).permutation(len(table))

        def __len__(self):
            return -(-len(table) // BATCH_SIZE)

        def __getitem__(self, i):
            rows = table[self.order[i * BATCH_SIZE : (i + 1) * BATCH_SIZE]]
            return decode_all(rows["image"]), rows["label"]

        def on_epoch_end(self):
            np.random.default_rng().shuffle(self.order)

    return pydataset_epoch(FromHub())


def datasets_to_tf(path: str) -> Epoch:
    """``to_tf_dataset`` (TensorFlow only), decoding in the collate function."""

    def collate(rows):
        return {
            "image": decode_all([r["image"] for r in rows]),
            "label": np.array([r["label"] for r in rows]),
        }

    ds = hugging_face(path).to_tf_dataset(
        batch_size=BATCH_SIZE,
        columns="image",
        label_cols="label",
        shuffle=True,
        collate_fn=collate,
    )

    def epoch() -> int:
        count = 0
        for _, y in ds:
            count += int(y.shape[0])
        return count

    return epoch


def run(backend: str, settings: Settings) -> list[Measurement]:
    folder = jpeg_folder(settings.image_files)
    path, _ = parquet_of(folder)
    results = [conversion(path, backend)]
    loaders = {
        "from_table: Parquet image bytes": from_parquet(path),
        "ImageFiles (the same JPEGs as files)": multimodal_images(folder),
        "datasets numpy + hand-written PyDataset": datasets_pydataset(path),
    }
    if backend == "tensorflow":
        loaders["datasets.to_tf_dataset + collate decode"] = datasets_to_tf(path)
    note = f"{settings.image_files} JPEGs 256x256 in Parquet -> 64x64, per-sample shuffle"
    results += measure(loaders, "tables", backend, BATCH_SIZE, settings.repetitions, note)
    return results


def conversion(path: str, backend: str) -> Measurement:
    """Seconds of the one-time Parquet -> Arrow conversion, as rows per second."""
    import shutil

    import pyarrow.parquet as pq

    from multimodal_dataset.tables.arrow_cache import mappable_column_file

    rows = pq.ParquetFile(path).metadata.num_rows
    shutil.rmtree(DATA / "conversion", ignore_errors=True)
    start = time.perf_counter()
    mappable_column_file(path, "image", "parquet", rows, DATA / "conversion")
    seconds = time.perf_counter() - start
    shutil.rmtree(DATA / "conversion", ignore_errors=True)
    note = "one-time Parquet -> memory-mappable Arrow conversion of the image column"
    return summarize(
        "Parquet image column -> Arrow cache", "tables", backend, BATCH_SIZE, [rows / seconds], note
    )
