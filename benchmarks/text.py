"""Variable-length text: a text-heavy ``model.fit`` (a masked embedding and a GRU that
honours the mask) on 20,000 captions with a long-tailed length (median 12 tokens, 99th
percentile about 120, longest 200), padded to a fixed 128 against bucketed, length-grouped
batches. Besides samples/s, each configuration reports the fraction of token slots that
are padding and how many step shapes the backend compiled.

Two bucket sets: five boundaries (at most five compiled shapes on JAX) and seven (less
padding, seven shapes). For this length distribution no five boundaries with the largest
at 128 pad less than 28.5% of the slots even if every sample sat in a batch of its own
bucket (`lowest_padding` computes it), so the 25% padding target needs more boundaries.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from benchmarks.common import Measurement, Settings, summarize
from benchmarks.fit import EpochTimes

BATCH_SIZE = 64
CAPTIONS = 20_000
VOCABULARY = 5_000
FIXED = 128
CONFIGS = {
    "fixed length 128": {"length": FIXED},
    "buckets 8..128 (5) + group_by_length": {"buckets": (8, 16, 32, 64, 128)},
    "buckets 8..128 (7) + group_by_length": {"buckets": (8, 16, 24, 32, 48, 64, 128)},
}


def captions(count: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``count`` captions of Zipf-distributed words whose lengths are log-normal (median
    12, 99th percentile about 120, clipped to 1..200), and a label per caption."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(12), 0.99, count)), 1, 200).astype(int)
    words = rng.zipf(1.3, int(lengths.sum())) % VOCABULARY
    ends = np.cumsum(lengths)
    texts = [
        " ".join(f"w{w}" for w in words[end - n : end])
        for n, end in zip(lengths, ends, strict=True)
    ]
    return texts, (lengths > 12).astype("float32")


class ShapeLog(keras.layers.Layer):
    """Passes its input through and notes its shape each time it is traced (JAX's jit,
    TensorFlow's tf.function) or called (PyTorch runs eagerly)."""

    def __init__(self, note, **kwargs):
        super().__init__(**kwargs)
        self.note = note  # a bound method: Keras would copy a list attribute

    def call(self, x):
        self.note(tuple(x.shape))
        return x


def text_model(log: list, length: int | None):
    keras.utils.set_random_seed(0)
    tokens = keras.Input((length,), dtype="int32")
    x = ShapeLog(log.append)(tokens)
    x = keras.layers.Embedding(VOCABULARY, 32, mask_zero=True)(x)
    x = keras.layers.GRU(32)(x)
    model = keras.Model(tokens, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile("adam", "binary_crossentropy")
    return model


def dataset(texts, y, options):
    """The `TextTokens` of ``texts`` with ``options`` and a `MultimodalDataset` of them."""
    from multimodal_dataset import MultimodalDataset, TextTokens

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the texts over 128 tokens: truncated in both
        tokens = TextTokens(texts, max_tokens=VOCABULARY, **options)
        grouped = "buckets" in options
        ds = MultimodalDataset(
            tokens, y, batch_size=BATCH_SIZE, seed=0, group_by_length=grouped, pad_remainder=True
        )
        return tokens, ds


def padding_fraction(ds) -> float:
    """The fraction of the token slots of one epoch's batches that are padding (id 0)."""
    slots = real = 0
    for i in range(len(ds)):
        tokens = ds[i][0]
        slots += tokens.size
        real += int(np.count_nonzero(tokens))
    return 1 - real / slots


def compiled_shapes(log: list, backend: str) -> int:
    """Step shapes the backend compiled: JAX jit-compiles once per distinct batch shape
    (Keras's first, extra trace only evaluates shapes); TensorFlow traces the step once per
    signature (every call after the model's symbolic build); PyTorch compiles nothing (the
    distinct batch shapes it ran are returned)."""
    if backend == "tensorflow":
        return len(log) - 1
    return len({s for s in log if s[0] == BATCH_SIZE})


def run(backend: str, settings: Settings) -> list[Measurement]:
    count = CAPTIONS if not settings.quick else settings.samples
    texts, y = captions(count)
    epochs = 1  # per round, after the compiling epoch
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    shapes: dict[str, int] = {}
    with warnings.catch_warnings():
        # The texts over 128 tokens, truncated alike in every configuration, are reported
        # at the end of every epoch: known here, not news.
        warnings.simplefilter("ignore")
        for _ in range(settings.rounds):  # rounds, so drift affects every configuration alike
            for name, options in CONFIGS.items():
                (_, ds), log, times = dataset(texts, y, options), [], EpochTimes()
                model = text_model(log, None if "buckets" in options else FIXED)
                model.fit(ds, epochs=epochs + 1, verbose=0, callbacks=[times])
                rates[name].append(epochs * count / sum(times.seconds[1:]))
                shapes[name] = compiled_shapes(log, backend)
    results = []
    for name, options in CONFIGS.items():
        tokens, ds = dataset(texts, y, options)
        padding = padding_fraction(ds)
        note = (
            f"{count:,} captions, embedding + masked GRU(32); padding {padding:.1%} of token "
            f"slots; {shapes[name]} step shape(s) {_compiled(backend)}"
        )
        result = summarize(name, "text", backend, BATCH_SIZE, rates[name], note)
        result.details = {"padding_fraction": round(padding, 4), "step_shapes": shapes[name]}
        if "buckets" in options:
            bound = lowest_padding(tokens.lengths, len(options["buckets"]))
            result.details["lowest_possible_padding"] = round(bound, 4)
        results.append(result)
    return results


def _compiled(backend: str) -> str:
    return {"jax": "compiled", "tensorflow": "traced"}.get(backend, "run eagerly")


def lowest_padding(lengths: np.ndarray, count: int, largest: int = FIXED) -> float:
    """The least padding any ``count`` boundaries (the largest ``largest``) can give
    ``lengths``, each sample padded to its own boundary (dynamic programming)."""
    lengths = np.minimum(lengths, largest)
    per_length = np.bincount(lengths, minlength=largest + 1)
    cumulative = np.concatenate([[0], np.cumsum(per_length)])

    def slots(low: int, high: int) -> float:  # lengths in (low, high] padded to high
        return float(cumulative[high + 1] - cumulative[low + 1]) * high

    best = np.full((count + 1, largest + 1), np.inf)
    best[1, 1:] = [slots(0, h) for h in range(1, largest + 1)]
    for k in range(2, count + 1):
        for high in range(k, largest + 1):
            best[k, high] = min(best[k - 1, low] + slots(low, high) for low in range(1, high))
    return 1 - float(lengths.sum()) / best[count, largest]
