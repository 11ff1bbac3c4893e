"""`Vocabulary`: the built-in word tokenizer and its ids, fitted on training texts.

Texts are lower-cased and split on word characters (Unicode ``\\w+``, which strips
punctuation), like Keras's ``TextVectorization`` default. Id 0 is padding, id 1 is
out-of-vocabulary, then tokens by decreasing training frequency (ties alphabetical), so a
vocabulary is a deterministic function of its training texts.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset.io.persistence import Saveable

PAD_ID = 0

OOV_ID = 1

PAD_TOKEN = ""

OOV_TOKEN = "[UNK]"

_WORD = re.compile(r"\w+")


def split_words(text: str) -> list[str]:
    """The built-in tokenizer: lower-case, then the runs of word characters."""
    return _WORD.findall(text.lower())


def count_words(texts: Iterable[str]) -> Counter[str]:
    """How often each word (`split_words`) occurs in ``texts``."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(split_words(text))
    return counts


def _check_max_tokens(max_tokens: int | None) -> None:
    if max_tokens is not None and max_tokens < 2:
        raise ValueError(
            f"max_tokens counts the padding and unknown tokens too, so it must be at "
            f"least 2; got max_tokens={max_tokens}."
        )


class Vocabulary(Saveable):
    """A word-level vocabulary: token -> id, with 0 for padding and 1 for unknown words.

    Fit it on the training texts only, save it next to the model, and load it to tokenize
    inference texts identically.

    Example:

    ```python
    vocab = Vocabulary.fit(train_captions, max_tokens=20_000)
    vocab.save("vocab.json")
    ids = Vocabulary.load("vocab.json").encode(["a new caption"], length=20)
    ```

    Args:
        tokens: Every token in id order, starting with ``""`` (padding) and ``"[UNK]"``.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tokens[:2] != [PAD_TOKEN, OOV_TOKEN]:
            raise ValueError(
                f"A vocabulary's first two tokens must be {PAD_TOKEN!r} (padding, id 0) and "
                f"{OOV_TOKEN!r} (unknown, id 1); got {tokens[:2]!r}. Build one with "
                "Vocabulary.fit(texts)."
            )
        if len(set(tokens)) != len(tokens):
            duplicates = sorted(t for t, c in Counter(tokens).items() if c > 1)
            raise ValueError(f"A vocabulary lists each token once; repeated: {duplicates[:5]!r}.")
        self.tokens = tokens
        self._ids = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def fit(
        cls, texts: Iterable[str], *, max_tokens: int | None = None, min_count: int = 1
    ) -> Vocabulary:
        """Builds the vocabulary of ``texts`` (the training texts only).

        Args:
            texts: The training texts.
            max_tokens: The vocabulary size including padding and unknown (so at most
                ``max_tokens - 2`` words), as in ``TextVectorization``; None keeps all.
            min_count: Keep only words seen at least this often.
        """
        _check_max_tokens(max_tokens)
        return cls.from_counts(count_words(texts), max_tokens=max_tokens, min_count=min_count)

    @classmethod
    def from_counts(
        cls, counts: Mapping[str, int], *, max_tokens: int | None = None, min_count: int = 1
    ) -> Vocabulary:
        """The vocabulary of words already counted (`count_words`, for example per chunk
        in several processes, then added up): the most frequent first, ties by word.

        Args:
            counts: How often each word occurs in the training texts.
            max_tokens: The vocabulary size including padding and unknown (see `fit`).
            min_count: Keep only words counted at least this often.
        """
        _check_max_tokens(max_tokens)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t)
        )
        if max_tokens is not None:
            ranked = ranked[: max_tokens - 2]
        return cls([PAD_TOKEN, OOV_TOKEN, *ranked])

    def __len__(self) -> int:
        """The number of ids, padding and unknown included: the ``Embedding`` input_dim."""
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __hash__(self) -> int:
        return hash(tuple(self.tokens))

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} ids: {self.tokens[2:7]!r}...)"

    def lookup(self, text: str) -> list[int]:
        """The ids of ``text``'s words (unknown words get id 1), untruncated."""
        ids = self._ids
        return [ids.get(word, OOV_ID) for word in split_words(text)]

    def encode(self, texts: Sequence[str], length: int) -> np.ndarray:
        """Token ids of ``texts``, truncated or padded with 0 at the end to ``length``."""
        return pad([self.lookup(text) for text in texts], length)

    FORMAT: ClassVar[str] = "multimodal_dataset.Vocabulary"
    REQUIRED: ClassVar[tuple[str, ...]] = ("tokens",)

    def _fields(self) -> dict[str, Any]:
        return {"tokens": self.tokens}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> Vocabulary:
        return cls(data["tokens"])


def pad(sequences: Sequence[Sequence[int]], length: int) -> np.ndarray:
    """Truncates (keeping the first ``length`` ids) or pads with 0 at the end."""
    return pad_ragged(sequences, length)[0]


def pad_ragged(sequences: Sequence[Sequence[int]], length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, lengths)``: the sequences truncated (keeping the first ``length`` ids) or
    padded with 0 at the end into ``(n, length)`` ``int32``, and each one's length before
    truncation, with one scatter instead of a Python loop over the rows."""
    n = len(sequences)
    lengths = np.fromiter(map(len, sequences), np.int64, n)
    kept = np.minimum(lengths, length)
    flat = np.fromiter(
        itertools.chain.from_iterable(s[:length] for s in sequences), np.int32, int(kept.sum())
    )
    out = np.zeros((n, length), np.int32)
    rows = np.repeat(np.arange(n), kept)
    columns = np.arange(len(flat)) - np.repeat(np.cumsum(kept) - kept, kept)
    out[rows, columns] = flat
    return out, lengths
