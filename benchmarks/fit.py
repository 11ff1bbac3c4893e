"""End to end: ``model.fit`` of a deliberately tiny three-input model (so the data path,
not the model, bounds it) fed by MultimodalDataset, against the same arrays given to fit.

Each round fits on arrays, on MultimodalDataset and on arrays again, back to back: the
two array fits do exactly the same work, so their per-round ratio is the measurement's
own noise, the yardstick for the ratio of the other two."""

from __future__ import annotations

import time

import keras

from benchmarks.common import (
    IMAGE_SHAPE,
    NUMERIC_FEATURES,
    TEXT_LENGTH,
    Measurement,
    Settings,
    arrays,
    measure,
    summarize,
)

BATCH_SIZE = 128


def tiny_model():
    keras.utils.set_random_seed(0)
    image = keras.Input(IMAGE_SHAPE, name="image")
    text = keras.Input((TEXT_LENGTH,), dtype="int32", name="text")
    numeric = keras.Input((NUMERIC_FEATURES,), name="numeric")
    features = keras.layers.Concatenate()(
        [
            keras.layers.GlobalAveragePooling2D()(image),
            keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(1000, 4)(text)),
            keras.layers.Dense(4)(numeric),
        ]
    )
    output = keras.layers.Dense(2, activation="softmax")(features)
    model = keras.Model([image, text, numeric], output)
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


class EpochTimes(keras.callbacks.Callback):
    """Records each epoch's wall time."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


FEEDS = {
    "arrays": "fit on arrays",
    "MultimodalDataset": "fit on MultimodalDataset",
    "arrays again": "fit on arrays (again: the noise)",
}


def fit_rate(feed: str, data, epochs: int) -> float:
    """Samples/s of the epochs after the first (which compiles), fed by ``feed``."""
    from multimodal_dataset import MultimodalDataset

    (img, txt, num), y = data
    model = tiny_model()
    times = EpochTimes()
    if feed == "MultimodalDataset":
        ds = MultimodalDataset((img, txt, num), y, batch_size=BATCH_SIZE, seed=0)
        model.fit(ds, epochs=epochs + 1, verbose=0, callbacks=[times])
    else:
        model.fit(
            [img, txt, num],
            y,
            batch_size=BATCH_SIZE,
            epochs=epochs + 1,
            verbose=0,
            callbacks=[times],
        )
    return epochs * len(y) / sum(times.seconds[1:])


def from_generator_ceiling(settings: Settings) -> Measurement:
    """TensorFlow only: how fast Keras's PyDataset bridge (tf.data.Dataset.from_generator,
    which PyDatasetAdapter uses on TensorFlow) delivers one precomputed batch over and over:
    a ceiling for any PyDataset's fit on TensorFlow, whatever the dataset does."""
    import tensorflow as tf

    (img, txt, num), y = arrays(settings.samples)
    batch = ((img[:BATCH_SIZE], txt[:BATCH_SIZE], num[:BATCH_SIZE]), y[:BATCH_SIZE])
    signature = tf.nest.map_structure(lambda a: tf.TensorSpec((None, *a.shape[1:]), a.dtype), batch)
    steps = len(y) // BATCH_SIZE

    def generator():
        for _ in range(steps):
            yield batch

    ds = tf.data.Dataset.from_generator(generator, output_signature=signature).prefetch(
        tf.data.AUTOTUNE
    )

    def epoch() -> int:
        for _ in ds:
            pass
        return steps * BATCH_SIZE

    (result,) = measure(
        {"tf.data.from_generator, one precomputed batch": epoch},
        "fit",
        "tensorflow",
        BATCH_SIZE,
        settings.repetitions,
        "ceiling of Keras's PyDataset bridge on TensorFlow (no model)",
    )
    return result


def run(backend: str, settings: Settings) -> list[Measurement]:
    data = arrays(settings.samples)
    rates: dict[str, list[float]] = {feed: [] for feed in FEEDS}
    # Rounds of (arrays, MultimodalDataset, arrays), so drift affects the feeds alike.
    for _ in range(settings.rounds):
        for feed in FEEDS:
            rates[feed].append(fit_rate(feed, data, settings.fit_epochs))
    note = (
        f"tiny 3-input model; per round one fit of {settings.fit_epochs} epochs after the "
        "first (compiling) one"
    )
    results = [
        summarize(name, "fit", backend, BATCH_SIZE, rates[feed], note)
        for feed, name in FEEDS.items()
    ]
    if backend == "tensorflow":
        results.append(from_generator_ceiling(settings))
    return results
