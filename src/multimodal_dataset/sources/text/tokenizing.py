"""Turning texts into token ids: decoding the raw cells, training a subword tokenizer,
tokenizing with the built-in vocabulary, a callable or a Hugging Face ``Tokenizer`` (its
Rust ``encode_batch`` tokenizes in parallel), and the fingerprint ``cache=`` keys on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset.sources.text.vocabulary import OOV_TOKEN, Vocabulary

Tokenizer = Callable[[str], Sequence[int]] | Any


def decode_texts(texts: Iterable[Any]) -> tuple[list[str], dict[int, str]]:
    """Strings for every sample (bad ones decoded leniently) and what was wrong with each."""
    strings: list[str] = []
    problems: dict[int, str] = {}
    for i, text in enumerate(texts):
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as error:
                problems[i] = (
                    f"the text is not valid UTF-8 (byte 0x{text[error.start]:02x} at byte "
                    f"{error.start})"
                )
                text = text.decode("utf-8", errors="replace")
        elif isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                # Surrogate escapes: bytes that were not UTF-8 when the file was read.
                byte = ord(text[error.start])
                shown = f"byte 0x{byte - 0xDC00:02x}" if 0xDC80 <= byte <= 0xDCFF else "a surrogate"
                problems[i] = (
                    f"the text is not valid UTF-8 ({shown} at character {error.start}); "
                    "save the file as UTF-8"
                )
                text = text.encode("utf-8", "replace").decode("utf-8")
        elif text is None or (isinstance(text, float) and np.isnan(text)):
            problems[i] = "the text is missing (None or NaN)"
            text = ""
        else:
            problems[i] = f"expected a string, got {type(text).__name__} {text!r}"
            text = ""
        strings.append(text)
    return strings, problems


#: Subword tokenizers `TextTokens` trains with Hugging Face ``tokenizers``. Only BPE: its
#: training is deterministic (the same texts give the same ids in every run, so every
#: backend and process sees the same stream); WordPiece's is not (tokenizers 0.22: three
#: different vocabularies in six runs on one corpus).
SUBWORD_KINDS = ("bpe",)


def train_subword_tokenizer(texts: Iterable[str], kind: str, vocabulary_size: int | None) -> Any:
    """A Hugging Face ``tokenizers.Tokenizer`` (byte-pair encoding) trained on ``texts``,
    with ``[PAD]`` as id 0 and ``[UNK]`` as id 1 like `Vocabulary`, after lower-casing,
    stripping accents and splitting on whitespace and punctuation.

    Args:
        texts: The training texts.
        kind: ``"bpe"``.
        vocabulary_size: The number of ids, the two special ones included.
    """
    if kind == "wordpiece":
        raise ValueError(
            "tokenizer='wordpiece' is not trained here: Hugging Face's WordPiece training is "
            "not deterministic (the same texts give different ids from run to run), which "
            "would give each process and backend another stream. Use tokenizer='bpe', or "
            "train a WordPiece tokenizer once yourself and pass the tokenizers.Tokenizer."
        )
    if kind not in SUBWORD_KINDS:
        raise ValueError(
            f"tokenizer={kind!r}: a tokenizer named by a string is one to train: 'bpe'. "
            "Pass a callable or a tokenizers.Tokenizer to use your own."
        )
    if vocabulary_size is None or vocabulary_size < 3:
        raise ValueError(
            f"tokenizer={kind!r} trains a vocabulary of max_tokens ids: pass max_tokens= "
            f"(at least 3; e.g. 8000), got {vocabulary_size!r}."
        )
    hf = optional_import("tokenizers", f"Training a {kind} tokenizer")
    tokenizer = hf.Tokenizer(hf.models.BPE(unk_token=OOV_TOKEN))
    trainer = hf.trainers.BpeTrainer(
        vocab_size=vocabulary_size,
        special_tokens=["[PAD]", OOV_TOKEN],  # ids 0 (padding, masked) and 1 (unknown)
        show_progress=False,
    )
    tokenizer.normalizer = hf.normalizers.Sequence(
        [hf.normalizers.NFD(), hf.normalizers.Lowercase(), hf.normalizers.StripAccents()]
    )
    tokenizer.pre_tokenizer = hf.pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def tokens_fingerprint(
    texts: str,
    vocabulary: Vocabulary | None,
    tokenizer: Tokenizer | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    """What the token ids depend on besides the length, for ``cache=``: ``texts`` is the
    digest of every text (see `TextsDigest`)."""
    from importlib import metadata

    found: dict[str, Any] = {"kind": "tokens", "texts": texts}
    if vocabulary is not None:
        found["vocabulary"] = hashlib.blake2b(
            json.dumps(vocabulary.tokens).encode(), digest_size=16
        ).hexdigest()
    elif tokenizer is None:
        found["fit"] = {"kind": "words", "max_tokens": max_tokens}
    else:
        if isinstance(tokenizer, str):
            found["fit"] = {"kind": tokenizer, "max_tokens": max_tokens}
        elif hasattr(tokenizer, "to_str"):
            found["tokenizer"] = hashlib.blake2b(
                tokenizer.to_str().encode(),
                digest_size=16,
            ).hexdigest()
        else:
            raise ValueError(
                "TextTokens(cache=...) keys the cache by the tokenizer, and a plain callable "
                "cannot be fingerprinted (its code and state are unknown), so cached ids could "
                "go stale silently. Use the built-in vocabulary, tokenizer='bpe' or a Hugging "
                "Face tokenizers.Tokenizer with cache=, or pass cache=None."
            )
        found["tokenizers"] = metadata.version("tokenizers")
    return found


def tokenize(tokenizer: Tokenizer, strings: list[str]) -> list[Sequence[int]]:
    if hasattr(tokenizer, "encode_batch"):  # a Hugging Face tokenizers.Tokenizer
        return [encoding.ids for encoding in tokenizer.encode_batch(strings)]
    if not callable(tokenizer):
        raise TypeError(
            "tokenizer must be a callable str -> list[int] or a Hugging Face "
            f"tokenizers.Tokenizer; got {type(tokenizer).__name__}."
        )
    return [tokenizer(s) for s in strings]
