"""Variable-length text trains on every backend: batches padded to bucket boundaries,
the first two batches of an epoch kept apart in length (TensorFlow freezes a length the
two share into the signature it infers from them), JAX compiling once per boundary, and
length-grouped batches keeping every ordering guarantee."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from multimodal_dataset import MultimodalDataset, TextTokens, TruncatedTextWarning
from multimodal_dataset.batching.order import GROUP_WINDOW_STEPS

pytestmark = pytest.mark.keras

BUCKETS = (4, 8, 16, 32)


def texts_of(lengths):
    return [" ".join(f"w{(i + j) % 40}" for j in range(n)) for i, n in enumerate(lengths)]


def long_tailed(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(1.6, 0.7, n).astype(int) + 1, 1, 30)


class ShapeLog(keras.layers.Layer):
    """Notes the static shape of every call: under jit (JAX) and tf.function that is once
    per traced (compiled) shape; eagerly (PyTorch) once per batch."""

    def __init__(self, log, **kwargs):
        super().__init__(**kwargs)
        # A bound method, not the list: Keras would track (copy) a list attribute.
        self.note = log.append

    def call(self, x):
        self.note(tuple(x.shape))
        return x


def text_model(log, vocabulary_size=64):
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(vocabulary_size, 8, mask_zero=True)(ShapeLog(log)(tokens))
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(tokens, keras.layers.Dense(1)(x))
    model.compile("sgd", "mse")
    return model


def widths(ds):
    return [ds[i][0].shape[1] for i in range(len(ds))]


def test_each_batch_is_padded_to_the_smallest_bucket_that_holds_its_longest_text():
    lengths = [3, 3, 3, 3, 7, 3, 3, 3, 20, 3, 3, 3]
    tokens = TextTokens(texts_of(lengths), buckets=BUCKETS)
    ds = MultimodalDataset(tokens, np.zeros(12), batch_size=4, shuffle=False)
    assert widths(ds) == [4, 8, 32]
    assert ds.element_spec[0].shape == (None, None)
    first = ds[0][0]
    np.testing.assert_array_equal((first != 0).sum(axis=1), [3, 3, 3, 3])


def test_the_first_two_steps_of_an_unshuffled_dataset_differ_in_length():
    lengths = [2] * 8 + [9] * 8 + [2] * 8  # naively 4, 4, 16: TensorFlow would freeze 4
    tokens = TextTokens(texts_of(lengths), buckets=BUCKETS)
    ds = MultimodalDataset(tokens, np.zeros(24), batch_size=4, shuffle=False)
    assert widths(ds) == [4, 8, 16, 16, 4, 4]  # step 1 padded to the next boundary


@pytest.mark.parametrize("group_by_length", [False, True])
def test_the_first_two_steps_of_every_shuffled_epoch_differ_in_length(group_by_length):
    tokens = TextTokens(texts_of(long_tailed(300)), buckets=BUCKETS)
    ds = MultimodalDataset(
        tokens, np.zeros(300), batch_size=8, seed=3, group_by_length=group_by_length
    )
    for _ in range(4):
        first, second = widths(ds)[:2]
        assert first != second
        ds.on_epoch_end()


@pytest.mark.backend
def test_fit_trains_every_epoch_whatever_the_first_two_batches_share(backend):
    # Unshuffled, the first two steps would both be padded to 4: on TensorFlow the
    # signature inferred from them would freeze it and the third batch would fail.
    lengths = [2] * 16 + list(long_tailed(80, seed=1))
    tokens = TextTokens(texts_of(lengths), buckets=BUCKETS)
    ds = MultimodalDataset(tokens, np.ones(96, "float32"), batch_size=8, shuffle=False)
    log = []
    history = text_model(log).fit(ds, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    grouped = MultimodalDataset(
        tokens, np.ones(96, "float32"), batch_size=8, seed=0, group_by_length=True
    )
    assert len(text_model([]).fit(grouped, epochs=3, verbose=0).history["loss"]) == 3


@pytest.mark.backend
def test_jax_compiles_the_train_step_once_per_bucket_boundary(backend):
    n = 8 * 40 + 3  # a partial last batch
    tokens = TextTokens(texts_of(long_tailed(n, seed=2)), buckets=BUCKETS)
    ds = MultimodalDataset(
        tokens, np.ones(n, "float32"), batch_size=8, seed=0, group_by_length=True
    )
    log = []
    model = text_model(log)
    model.fit(ds, epochs=3, verbose=0)
    concrete = [s for s in log if all(isinstance(d, int) and d < 80 for d in s)]
    if backend == "jax":
        # jit compiles once per distinct shape: one per boundary, plus the partial last
        # batch (padded to the largest). Keras traces the first shape once more, without
        # compiling, to build the optimizer's state (jax.eval_shape).
        allowed = {(8, b) for b in BUCKETS} | {(3, BUCKETS[-1])}
        assert len(set(concrete)) >= 3 and set(concrete) <= allowed
        assert len(concrete) <= len(set(concrete)) + 1
    elif backend == "tensorflow":
        # the symbolic build, then one trace of the train step for every length
        assert len(log) == 2 and all(s[1] is None for s in log)
    else:  # eager: one call per batch at its own width
        assert len(concrete) >= 3 * len(ds) and {s[1] for s in concrete} <= set(BUCKETS)


# ------------------------------------------------------------- length grouping


def test_length_grouping_keeps_each_sample_once_per_epoch_and_wastes_little_padding():
    lengths = long_tailed(400)
    tokens = TextTokens(texts_of(lengths), buckets=BUCKETS)
    kwargs = {"batch_size": 8, "seed": 4}
    grouped = MultimodalDataset(tokens, np.arange(400), group_by_length=True, **kwargs)
    plain = MultimodalDataset(tokens, np.arange(400), **kwargs)

    def epoch(ds):
        ids, slots = [], 0
        for i in range(len(ds)):
            x, y = ds[i]
            ids.append(y)
            slots += x.size
        ds.on_epoch_end()
        return np.concatenate(ids), slots

    for _ in range(2):
        ids, grouped_slots = epoch(grouped)
        np.testing.assert_array_equal(np.sort(ids), np.arange(400))
        _, plain_slots = epoch(plain)
        assert grouped_slots < 0.6 * plain_slots
    first = MultimodalDataset(tokens, np.arange(400), group_by_length=True, **kwargs)
    second = MultimodalDataset(tokens, np.arange(400), group_by_length=True, **kwargs)
    for _ in range(2):  # the same order from the same (seed, epoch)
        np.testing.assert_array_equal(epoch(first)[0], epoch(second)[0])


def test_every_shard_of_a_step_gets_the_same_padded_length_and_the_samples_once():
    lengths = long_tailed(240, seed=5)
    tokens = TextTokens(texts_of(lengths), buckets=BUCKETS)

    def shard(i):
        return MultimodalDataset(
            tokens, np.arange(240), batch_size=8, seed=2, group_by_length=True, shard=(i, 3)
        )

    shards = [shard(i) for i in range(3)]
    seen = []
    for step in range(len(shards[0])):
        batches = [ds[step] for ds in shards]
        assert len({x.shape[1] for x, _ in batches}) == 1
        seen += [y for _, y in batches]
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(240))


def test_length_grouped_steps_are_padded_to_their_samples_own_boundary_but_a_few():
    # Steps are grouped a window of GROUP_WINDOW_STEPS at a time, each window on its own
    # (no state carried from one to the next): only where one bucket's samples end and
    # the next one's begin may a step mix two, fewer than len(BUCKETS) steps per window.
    lengths = long_tailed(1000, seed=7)
    tokens = TextTokens(texts_of(lengths), buckets=BUCKETS)
    ds = MultimodalDataset(tokens, np.arange(1000), batch_size=8, seed=3, group_by_length=True)
    own = np.asarray(BUCKETS)[np.searchsorted(BUCKETS, tokens.lengths)]
    for _ in range(2):
        mixed = 0
        for i in range(len(ds)):
            x, ids = ds[i]
            mixed += int((own[ids] < x.shape[1]).any())
        windows = -(-len(ds) // GROUP_WINDOW_STEPS)
        assert mixed <= (len(BUCKETS) - 1) * windows < len(ds) / 10
        ds.on_epoch_end()


@pytest.mark.parametrize(
    ("group_by_length", "message"),
    [
        (True, "every input has a fixed shape"),
        ("text", "names no input"),
        (1, "has a fixed shape"),
    ],
)
def test_grouping_by_an_input_that_is_not_variable_length_says_how_to_fix_it(
    group_by_length, message
):
    fixed = TextTokens(texts_of([3, 4, 5, 6]), length=8)
    with pytest.raises(ValueError, match=message):
        MultimodalDataset(
            (fixed, np.zeros((4, 2))), np.zeros(4), batch_size=2, group_by_length=group_by_length
        )


@pytest.mark.parametrize("workers", [{"workers": 1}, {"workers": 3}])
def test_a_length_grouped_stream_resumes_exactly_in_every_worker_mode(workers):
    from multimodal_dataset import testing

    tokens = TextTokens(texts_of(long_tailed(120, seed=6)), buckets=BUCKETS)
    ds = MultimodalDataset(
        tokens, np.arange(120), batch_size=8, seed=9, group_by_length=True, **workers
    )
    testing.check_resumable(ds)


# ------------------------------------------------------------- truncated texts


def truncation_reports(caught):
    return [str(w.message) for w in caught if issubclass(w.category, TruncatedTextWarning)]


@pytest.mark.backend
def test_fit_reports_the_truncated_texts_at_the_end_of_every_epoch_each_once():
    lengths = [3] * 20 + [40, 50, 3, 3]  # samples 20 and 21 exceed the largest bucket
    with pytest.warns(TruncatedTextWarning, match="2 of 24 texts"):
        tokens = TextTokens(texts_of(lengths), buckets=BUCKETS)
    ds = MultimodalDataset(tokens, np.ones(24, "float32"), batch_size=4, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text_model([]).fit(ds, epochs=3, verbose=0)
    reports = truncation_reports(caught)
    # fit's epochs are the dataset's 0, 1, 2; the batches Keras reads before training
    # are served again in the first one and reported with it.
    assert [r.split(":")[0] for r in reports] == [f"MultimodalDataset epoch {e}" for e in (0, 1, 2)]
    for report in reports:
        assert "2 texts of inputs were longer than its largest bucket (32 tokens)" in report
        assert "samples 20, 21" in report and "TextTokens(buckets=...)" in report


def test_each_shard_reports_the_truncated_texts_it_served_and_none_is_reported_twice():
    lengths = [3] * 20 + [40, 50, 60, 3]
    with pytest.warns(TruncatedTextWarning):
        tokens = TextTokens(texts_of(lengths), buckets=BUCKETS)
    counted = 0
    for index in range(2):
        ds = MultimodalDataset(tokens, np.arange(24), batch_size=4, seed=1, shard=(index, 2))
        ds.on_epoch_begin()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step in range(len(ds)):
                ds[step]
            ds[0]  # read again: still once
            ds.on_epoch_end()
        for report in truncation_reports(caught):
            counted += int(report.split(": ")[1].split(" ")[0])
    assert counted == 3


def test_a_fixed_length_and_texts_within_the_largest_bucket_report_nothing():
    fixed = TextTokens(texts_of([3, 40]), length=8)  # truncating to length= is the request
    within = TextTokens(texts_of([3, 20]), buckets=BUCKETS)
    for tokens in (fixed, within):
        ds = MultimodalDataset(tokens, np.zeros(2), batch_size=1, seed=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds.on_epoch_begin()
            ds[0], ds[1]
            ds.on_epoch_end()
        assert truncation_reports(caught) == []
