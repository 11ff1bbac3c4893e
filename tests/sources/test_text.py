"""Vocabulary and TextTokens: raw strings to fixed-length int32 ids, fitted on training
text only, saved and reloaded, with bad text named by sample and row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from multimodal_dataset import (
    MultimodalDataset,
    SampleError,
    TextTokens,
    TruncatedTextWarning,
    Vocabulary,
)
from multimodal_dataset.sources import GatherContext

TRAIN = ["The cat sat.", "the dog sat!", "A cat, a hat; a CAT"]


def test_a_vocabulary_ranks_words_by_frequency_then_alphabetically_after_padding_and_unknown():
    vocab = Vocabulary.fit(TRAIN)
    assert vocab.tokens == ["", "[UNK]", "a", "cat", "sat", "the", "dog", "hat"]
    assert len(vocab) == 8


def test_max_tokens_counts_padding_and_unknown_like_text_vectorization():
    assert Vocabulary.fit(TRAIN, max_tokens=4).tokens == ["", "[UNK]", "a", "cat"]
    with pytest.raises(ValueError, match="at least 2"):
        Vocabulary.fit(TRAIN, max_tokens=1)


def test_encoding_lowercases_strips_punctuation_pads_truncates_and_marks_unknown_words():
    vocab = Vocabulary.fit(TRAIN)
    ids = vocab.encode(["CAT sat", "the zebra sat on a cat hat dog"], length=5)
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [[3, 4, 0, 0, 0], [5, 1, 4, 1, 2]])


def test_a_saved_vocabulary_loads_equal_and_encodes_identically(tmp_path):
    vocab = Vocabulary.fit(["naïve café crème", "日本語 テキスト", *TRAIN])
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded == vocab
    texts = ["café 日本語 cat unknown"]
    np.testing.assert_array_equal(loaded.encode(texts, 6), vocab.encode(texts, 6))


def test_loading_a_file_that_is_not_a_vocabulary_says_so(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="Not a saved Vocabulary"):
        Vocabulary.load(tmp_path / "other.json")


def test_text_tokens_fit_on_their_texts_and_reuse_a_vocabulary_for_other_texts(tmp_path):
    train = TextTokens(TRAIN, length=4)
    assert train.shape == (3, 4) and train.dtype == np.int32
    train.vocabulary.save(tmp_path / "vocab.json")
    test = TextTokens(["a bird sat"], length=4, vocabulary=tmp_path / "vocab.json")
    np.testing.assert_array_equal(test.ids, [[2, 1, 4, 0]])  # "bird" was never trained on
    assert test.vocabulary == train.vocabulary


@pytest.mark.keras
def test_text_tokens_feed_a_dataset_alongside_arrays():
    tokens = TextTokens(TRAIN, length=4)
    ds = MultimodalDataset((tokens, np.arange(3.0)[:, None]), np.arange(3), batch_size=3)
    (ids, _), labels = ds[0]
    np.testing.assert_array_equal(ids, tokens.ids[labels])
    assert ds.element_spec[0][0].shape == (None, 4) and ds.element_spec[0][0].dtype == "int32"


def test_a_callable_tokenizer_replaces_the_vocabulary():
    tokens = TextTokens(["ab", "abcdef"], length=3, tokenizer=lambda s: [ord(c) - 96 for c in s])
    np.testing.assert_array_equal(tokens.ids, [[1, 2, 0], [1, 2, 3]])
    assert tokens.vocabulary is None


def test_a_hugging_face_tokenizer_plugs_in():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, "the": 2, "cat": 3, "sat": 4}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokens = TextTokens(["the cat sat", "the dog"], length=4, tokenizer=tokenizer)
    np.testing.assert_array_equal(tokens.ids, [[2, 3, 4, 0], [2, 1, 0, 0]])


def test_a_vocabulary_and_a_tokenizer_together_are_ambiguous():
    with pytest.raises(ValueError, match="not both"):
        TextTokens(TRAIN, length=3, vocabulary=Vocabulary.fit(TRAIN), tokenizer=str.split)


BAD_TEXTS = {
    "non-UTF-8 bytes": (b"caf\xe9 au lait", r"not valid UTF-8 \(byte 0xe9 at byte 3\)"),
    "undecodable surrogates": ("caf\udce9 au lait", r"not valid UTF-8 \(byte 0xe9 at character 3"),
    "None": (None, "missing"),
    "NaN": (float("nan"), "missing"),
    "a number": (42, "expected a string"),
}


@pytest.mark.parametrize(("text", "message"), BAD_TEXTS.values(), ids=list(BAD_TEXTS))
def test_bad_text_raises_naming_the_sample_row_and_column(text, message):
    texts = ["fine", "also fine", text]
    with pytest.raises(SampleError, match=message) as info:
        TextTokens(texts, length=3, rows=[10, 11, 12], column="caption")
    assert "sample 2 (table row 12, column 'caption')" in str(info.value)


def test_replaced_text_is_reported_whenever_a_batch_contains_it():
    tokens = TextTokens([b"ok", b"caf\xe9 bad", b"fine"], length=3, on_error="replace")
    context = GatherContext(field="inputs[1]")
    ids = tokens.gather(np.array([2, 1]), context)
    assert ids.shape == (2, 3)
    assert [s for s, _ in context.replaced] == [1]
    assert "not valid UTF-8" in context.replaced[0][1]
    empty = GatherContext()
    tokens.gather(np.array([0, 2]), empty)
    assert empty.replaced == []


@pytest.mark.parametrize("length", [0, -1, 2.5, True])
def test_length_must_be_a_positive_integer(length):
    with pytest.raises(ValueError, match="length must be a positive integer"):
        TextTokens(TRAIN, length=length)


def test_a_single_string_is_rejected_with_a_hint():
    with pytest.raises(TypeError, match="one text per sample"):
        TextTokens("just one caption", length=3)


# ------------------------------------------------------------------ bucketed lengths


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        ((), "increasing positive integers.*empty"),
        ((16, 8), "strictly increasing.*buckets=\\(8, 16\\)"),
        ((8, 8), "strictly increasing"),
        ((0, 8), "0 is not a positive integer"),
        ((8, 16.0), "16.0 is not a positive integer"),
        ((True, 8), "True is not a positive integer"),
        ("16,32", "a sequence of increasing positive integers"),
    ],
)
def test_bad_buckets_are_refused_with_an_example(buckets, message):
    with pytest.raises((ValueError, TypeError), match=message):
        TextTokens(["a b"], buckets=buckets)


def test_length_and_buckets_together_or_neither_are_refused():
    with pytest.raises(ValueError, match="not both"):
        TextTokens(["a b"], length=4, buckets=(4, 8))
    with pytest.raises(TypeError, match=r"needs length= .* or buckets="):
        TextTokens(["a b"])


def test_texts_longer_than_the_largest_bucket_are_truncated_counted_and_reported():
    texts = ["a b c", "a " * 12, "b " * 20]
    with pytest.warns(TruncatedTextWarning, match=r"2 of 3 texts are longer than the largest"):
        tokens = TextTokens(texts, buckets=(4, 8))
    np.testing.assert_array_equal(tokens.truncated, [1, 2])
    np.testing.assert_array_equal(tokens.lengths, [3, 8, 8])
    assert tokens.shape == (3, 8) and "buckets=(4, 8)" in repr(tokens)


@pytest.mark.keras
def test_one_bucket_is_a_fixed_length():
    tokens = TextTokens(["a b c", "a"], buckets=(4,))
    ds = MultimodalDataset(tokens, np.zeros(2), batch_size=1, shuffle=False)
    assert ds.element_spec[0].shape == (None, 4) and ds[1][0].shape == (1, 4)


def test_a_bpe_tokenizer_is_trained_on_the_texts_with_padding_id_0_deterministically():
    texts = ["the quick brown fox", "the lazy dog sleeps", "quickly foxes run"] * 10
    tokens = TextTokens(texts, buckets=(4, 8, 16), tokenizer="bpe", max_tokens=60)
    assert tokens.vocabulary is None and tokens.vocabulary_size <= 60
    assert tokens.tokenizer.token_to_id("[PAD]") == 0
    assert tokens.tokenizer.token_to_id("[UNK]") == 1
    assert (tokens.ids[:, 0] > 1).all()  # every text starts with a real subword
    again = TextTokens(texts, buckets=(4, 8, 16), tokenizer="bpe", max_tokens=60)
    np.testing.assert_array_equal(tokens.ids, again.ids)  # training is deterministic


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tokenizer": "bpe"}, "pass max_tokens="),
        ({"tokenizer": "sentencepiece", "max_tokens": 50}, "one to train: 'bpe'"),
        ({"tokenizer": "wordpiece", "max_tokens": 50}, "WordPiece training is not determ"),
    ],
)
def test_a_subword_tokenizer_needs_a_known_kind_and_a_size(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TextTokens(["a b c"], length=4, **kwargs)
