"""End to end: 10 epochs of the reference model trained from JPEG files, captions and
numbers through `from_table` with ``workers=2``, without and with ``cache=`` (a new, empty
cache each round, so its first epoch decodes and fills it), against the pipelines a user
would otherwise write: on every backend a hand-written ``keras.utils.PyDataset`` decoding
with Pillow in Keras's own pool (``workers=2``), and on the same backend ``tf.data`` with
``cache()`` and ``prefetch()`` (TensorFlow) or a ``torch.utils.data.DataLoader(
num_workers=2)`` over a hand-written dataset (PyTorch).

Each row's rate is the 10-epoch sample count over the 10-epoch wall time (first epoch,
with its compiling, included); ``details`` keep the first epoch and the later epochs'
median. A ``PyDataset`` serving the batches already decoded (no work but slicing) bounds
what any ``PyDataset`` can reach through Keras's adapter. The decode-only rows time the
image source alone (no model): every image decoded each epoch, against read from the
cache in the epochs after the first.
"""

from __future__ import annotations

import csv
import statistics
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import Measurement, Settings, jpeg_folder, measure, summarize
from benchmarks.fit import EpochTimes

BATCH_SIZE = 64
EPOCHS = 10
SIZE = (64, 64)
TEXT_LENGTH = 20
NUMERIC = ("n0", "n1", "n2", "n3", "n4")
WORDS = [f"w{i}" for i in range(300)]
WORKERS = 2
PRECOMPUTED = "bound: PyDataset of precomputed batches (no decoding)"
UNCACHED = "from_table, workers=2, no cache"
CACHED = "from_table, workers=2, cache= (empty: epoch 1 fills it)"
KERAS_POOL = "hand-written PyDataset, Keras pool workers=2 (Pillow)"


def manifest(count: int) -> Path:
    """A CSV of ``count`` JPEG paths (256x256), captions, five numbers and the class."""
    folder = jpeg_folder(count)
    path = folder / "manifest.csv"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    files = sorted(folder.glob("class_*/*.jpg"))
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image", "caption", *NUMERIC, "label"])
        for image in files:
            label = int(image.parent.name[-1])
            words = rng.choice(WORDS, rng.integers(4, 24))
            numbers = rng.normal(label, 1.0, len(NUMERIC)).round(4)
            writer.writerow([image.relative_to(folder), " ".join(words), *numbers, label])
    return path


def datasets(table: Path, cache: str | None):
    from multimodal_dataset import from_table

    train, _ = from_table(
        table,
        image="image",
        text="caption",
        numeric=list(NUMERIC),
        target="label",
        image_size=SIZE,
        text_length=TEXT_LENGTH,
        validation_split=0,
        batch_size=BATCH_SIZE,
        seed=0,
        cache=cache,
        workers=WORKERS,
    )
    return train


def model(vocabulary: int):
    from multimodal_dataset import models

    return models.build_reference_model(
        image_shape=(*SIZE, 3), text_length=TEXT_LENGTH, vocab_size=vocabulary, seed=0
    )


def train(feed, vocabulary: int, epochs: int = EPOCHS) -> list[float]:
    """Each epoch's seconds of ``epochs`` epochs of the reference model on ``feed``."""
    times = EpochTimes()
    # Every feed shuffles itself (Keras's shuffle would only warn for tf.data and torch).
    model(vocabulary).fit(feed, epochs=epochs, verbose=0, callbacks=[times], shuffle=False)
    return times.seconds


def columns(table: Path, reference):
    """What the hand-written pipelines start from: the image paths, and the token ids,
    standardised numbers and labels `from_table` computed (so only image loading differs)."""
    with open(table) as file:
        paths = [str(table.parent / row["image"]) for row in csv.DictReader(file)]
    _, text, numbers = (f.array for f in reference.layout.inputs.fields)
    labels = np.asarray(reference.layout.targets.fields[0].array.array)  # an ArraySource
    return paths, text.ids, numbers.values, labels


def tf_data(table: Path, reference):
    """The tf.data pipeline a TensorFlow user writes: decode in parallel, cache the
    decoded images in memory, shuffle, batch, prefetch."""
    import tensorflow as tf

    slices = columns(table, reference)
    count = len(slices[0])

    def load(path, ids, values, label):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        image = tf.image.resize(image, SIZE) / 255.0
        return (image, ids, values), label

    return (
        tf.data.Dataset.from_tensor_slices(slices)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .cache()
        .shuffle(count, seed=0)
        .batch(BATCH_SIZE)
        .prefetch(tf.data.AUTOTUNE)
    )


def load_image(path: str) -> np.ndarray:
    """What a hand-written loader does per image: open, convert, resize with Pillow."""
    from PIL import Image

    with Image.open(path) as image:
        pixels = image.convert("RGB").resize(SIZE[::-1], Image.BILINEAR)
    return np.asarray(pixels, "float32") / 255


def torch_loader(table: Path, reference):
    """The DataLoader a PyTorch user writes: a dataset that opens, converts and resizes
    one JPEG per item with Pillow, two worker processes."""
    import torch

    paths, ids, values, labels = columns(table, reference)

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return load_image(paths[i]), ids[i], values[i], labels[i]

    return torch.utils.data.DataLoader(
        Files(), batch_size=BATCH_SIZE, shuffle=True, num_workers=WORKERS, collate_fn=collate
    )


def keras_pool(table: Path, reference):
    """The `PyDataset` a Keras user writes: a batch of JPEGs decoded with Pillow per
    ``__getitem__``, the order reshuffled each epoch, Keras's own pool of two threads."""
    import keras

    paths, ids, values, labels = columns(table, reference)

    class Files(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=WORKERS)
            self.order = np.random.default_rng(0).permutation(len(paths))

        def __len__(self):
            return -(-len(paths) // BATCH_SIZE)

        def __getitem__(self, i):
            batch = self.order[i * BATCH_SIZE : (i + 1) * BATCH_SIZE]
            images = np.stack([load_image(paths[j]) for j in batch])
            return (images, ids[batch], values[batch]), labels[batch]

        def on_epoch_end(self):
            np.random.default_rng().shuffle(self.order)

    return Files()


def precomputed(reference):
    """A `PyDataset` serving the same batches already decoded, in memory: no work per
    batch but slicing, so its 10 epochs bound what any ``PyDataset`` (ours included) can
    reach through Keras's adapter on this backend."""
    import keras

    batches = [reference[i] for i in range(len(reference))]

    class Precomputed(keras.utils.PyDataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            return batches[i]

    return Precomputed()


def collate(items):
    images, ids, values, labels = (np.stack(column) for column in zip(*items, strict=True))
    return (images, ids, values), labels


def decode_only(table: Path, backend: str, settings: Settings) -> list[Measurement]:
    """The image source alone: decoding every epoch, against the cache after epoch 1."""
    with tempfile.TemporaryDirectory() as cache:
        plain = datasets(table, None).layout.inputs.fields[0].array
        cached = datasets(table, cache).layout.inputs.fields[0].array
        batches = np.array_split(np.arange(len(plain)), -(-len(plain) // BATCH_SIZE))

        def epoch(source):
            from multimodal_dataset import GatherContext

            def run() -> int:
                for batch in batches:
                    source.gather(batch, GatherContext())
                return len(plain)

            return run

        # measure()'s warm-up epoch fills the cache: the timed epochs are the later ones.
        return measure(
            {
                "images decode-only: decoded every epoch": epoch(plain),
                "images decode-only: cache=, epochs after the first": epoch(cached),
            },
            "pipeline",
            backend,
            BATCH_SIZE,
            settings.repetitions,
            note=f"{len(plain):,} JPEGs 256x256 -> 64x64, ImageFiles gathers, no model",
        )


def run(backend: str, settings: Settings) -> list[Measurement]:
    table = manifest(settings.image_files)
    reference = datasets(table, None)
    vocabulary = len(reference.preprocessing.vocabulary)
    count = reference.num_samples
    results = decode_only(table, backend, settings)
    feeds = {UNCACHED: lambda: datasets(table, None)}
    feeds[CACHED] = "fresh cache"
    feeds[KERAS_POOL] = lambda: keras_pool(table, reference)
    feeds[PRECOMPUTED] = lambda: precomputed(reference)
    if backend == "tensorflow":
        feeds["tf.data: map + cache() + prefetch()"] = lambda: tf_data(table, reference)
    if backend == "torch":
        feeds["torch DataLoader(num_workers=2)"] = lambda: torch_loader(table, reference)
    epochs: dict[str, list[list[float]]] = {name: [] for name in feeds}
    count_epochs = 2 if settings.quick else EPOCHS  # the smoke run: a first and a later one
    for _ in range(1 if settings.quick else settings.rounds):  # rounds alternate the feeds
        for name, make in feeds.items():
            if make == "fresh cache":
                with tempfile.TemporaryDirectory() as cache:
                    epochs[name].append(train(datasets(table, cache), vocabulary, count_epochs))
            else:
                epochs[name].append(train(make(), vocabulary, count_epochs))
    note = (
        f"{count_epochs} epochs of the reference model, {count:,} JPEGs 256x256 -> 64x64 + "
        f"captions + 5 numbers, first epoch (compiling) included"
    )
    for name, rounds in epochs.items():
        rates = [count_epochs * count / sum(seconds) for seconds in rounds]
        result = summarize(name, "pipeline", backend, BATCH_SIZE, rates, note)
        result.details = {
            "first_epoch_s": round(statistics.median(r[0] for r in rounds), 3),
            "later_epoch_s": round(statistics.median(s for r in rounds for s in r[1:]), 3),
            "total_s": [round(sum(r), 2) for r in rounds],
        }
        results.append(result)
    return results
