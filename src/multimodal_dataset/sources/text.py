"""Raw text to fixed-length ``int32`` token ids: `Vocabulary` and `TextTokens`.

The built-in tokenizer lower-cases and splits on word characters (Unicode ``\\w+``, which
strips punctuation), like Keras's ``TextVectorization`` default
(``"lower_and_strip_punctuation"``, whitespace split). Id 0 is padding, id 1 is
out-of-vocabulary, then tokens by decreasing training frequency (ties alphabetical), so a
vocabulary is a deterministic function of its training texts. Any tokenizer can be
plugged in instead: a callable ``str -> list[int]``, or a Hugging Face ``tokenizers``
``Tokenizer`` (its Rust ``encode_batch`` tokenizes in parallel).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset.checks import check_int
from multimodal_dataset.optional import optional_import
from multimodal_dataset.persistence import Saveable
from multimodal_dataset.sources.protocol import (
    GatherContext,
    OnError,
    PrecomputedSource,
    check_on_error,
    check_rows,
)
from multimodal_dataset.sources.token_cache import Tokenized, cached_tokens, texts_digest

PAD_ID = 0
OOV_ID = 1
PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
_WORD = re.compile(r"\w+")


def split_words(text: str) -> list[str]:
    """The built-in tokenizer: lower-case, then the runs of word characters."""
    return _WORD.findall(text.lower())


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
        if max_tokens is not None and max_tokens < 2:
            raise ValueError(
                f"max_tokens counts the padding and unknown tokens too, so it must be at "
                f"least 2; got max_tokens={max_tokens}."
            )
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(split_words(text))
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
    out = np.zeros((len(sequences), length), dtype=np.int32)
    for row, ids in enumerate(sequences):
        ids = ids[:length]
        out[row, : len(ids)] = ids
    return out


Tokenizer = Callable[[str], Sequence[int]] | Any


class TextTokens(PrecomputedSource):
    """Raw strings as fixed-length ``int32`` token ids (0 = padding, 1 = unknown word).

    The texts are validated and tokenized once, at construction (tokenizing is far
    cheaper than training on the result, and batches then gather ids with one index).
    Without a vocabulary or tokenizer, a `Vocabulary` is fitted on these texts: do that for
    the training texts only, and pass ``vocabulary=train_tokens.vocabulary`` (or a saved
    vocabulary's path) for validation and inference texts.

    Example:

    ```python
    train_text = TextTokens(train_captions, length=20)
    train_text.vocabulary.save("vocab.json")
    test_text = TextTokens(test_captions, length=20, vocabulary="vocab.json")
    ```

    Args:
        texts: One string per sample (``bytes`` are decoded as UTF-8).
        length: Token ids per sample: longer texts are truncated, shorter ones padded.
        buckets: Instead of ``length``: the lengths a batch may be padded to, e.g.
            ``(16, 32, 64, 128)``. Each batch is padded (with 0, which
            ``Embedding(mask_zero=True)`` masks) to the smallest that holds its longest
            text, decided per step so every shard and worker agrees; texts longer than
            the largest are truncated to it and counted (`truncated`, and a
            `TruncatedTextWarning`). The model's input is then ``keras.Input((None,),
            dtype="int32")``; see ``group_by_length`` to waste little padding.
        vocabulary: A `Vocabulary`, the path of a saved one, or None to fit one here.
        tokenizer: Instead of a vocabulary: ``"bpe"`` to train a Hugging Face
            ``tokenizers`` byte-pair subword tokenizer of ``max_tokens`` ids on these texts (the
            training texts; it is kept as ``.tokenizer`` and saved with a table's
            preprocessing), a callable ``str -> list[int]``, or a Hugging
            Face ``tokenizers.Tokenizer``. Its ids are used as they are, so 0 should be
            its padding id.
        max_tokens: When fitting: the vocabulary size, padding and unknown included.
        on_error: ``"raise"`` for text that is not a string or not valid UTF-8, or
            ``"replace"`` to decode it with U+FFFD for bad bytes and report it.
        rows: Table row of each sample, named in error messages (set by `from_table`).
        column: Table column of the texts, named in error messages.
        cache: A directory where the token ids (and a vocabulary or tokenizer fitted
            here) are kept, memory-mapped, keyed by every text, the vocabulary or
            tokenizer (or how it is fitted), the length and the cache format: a run
            with the same texts skips tokenizing. Not with a plain callable tokenizer,
            which cannot be fingerprinted. None (the default): no cache.

    Raises:
        SampleError: For a missing (None/NaN) or undecodable text, naming the sample.
        CacheError: When ``cache`` cannot be written (not writable, or full).
    """

    work = "gathering token ids"

    def __init__(
        self,
        texts: Sequence[Any] | np.ndarray,
        length: int | None = None,
        *,
        buckets: Sequence[int] | None = None,
        vocabulary: Vocabulary | str | os.PathLike[str] | None = None,
        tokenizer: Tokenizer | None = None,
        max_tokens: int | None = None,
        on_error: OnError = "raise",
        rows: Sequence[int] | np.ndarray | None = None,
        column: str | None = None,
        cache: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(texts, (str, bytes)):
            raise TypeError(
                "TextTokens takes one text per sample; got a single string. Wrap it in a "
                "list: TextTokens([text], length=...)."
            )
        self._buckets = _check_length_or_buckets(length, buckets)
        self.buckets = self._buckets
        if vocabulary is not None and tokenizer is not None:
            raise ValueError(
                "Give a vocabulary or a tokenizer, not both: a tokenizer brings its own ids."
            )
        on_error = check_on_error(on_error)
        strings, problems = _decode_texts(texts)
        given = (
            Vocabulary.load(vocabulary)
            if isinstance(vocabulary, (str, os.PathLike))
            else vocabulary
        )
        self.length = self._buckets[-1]

        def tokenize() -> Tokenized:
            return _tokenize_all(strings, problems, given, tokenizer, max_tokens, self.length)

        if cache is None:
            result = tokenize()
        else:
            fingerprint = _fingerprint(strings, problems, given, tokenizer, max_tokens)
            result = cached_tokens(cache, {**fingerprint, "length": self.length}, tokenize)
        if "vocabulary" in result.fitted:
            given = Vocabulary(result.fitted["vocabulary"])
        elif "tokenizer" in result.fitted:
            hf = optional_import("tokenizers", "Loading a cached tokenizer")
            tokenizer = hf.Tokenizer.from_str(result.fitted["tokenizer"])
        self.vocabulary = given
        self.tokenizer = tokenizer
        full = result.lengths
        #: Each text's length in tokens, after truncation to the largest bucket.
        self._lengths = np.minimum(full, self.length).astype(np.int32)
        #: The samples whose texts were longer than ``length`` (the largest bucket).
        self.truncated = np.flatnonzero(full > self.length)
        super().__init__(
            result.ids,
            problems,
            on_error,
            check_rows(rows, len(strings), "TextTokens"),
            column,
        )
        self.raise_or_keep("TextTokens")
        if len(self._buckets) > 1 and len(self.truncated):
            warnings.warn(
                f"TextTokens{f' (column {column!r})' if column else ''}: "
                f"{len(self.truncated)} of {len(strings)} texts are longer than the largest "
                f"bucket ({self.length} tokens) and are truncated to it (the first: "
                f"{self.describe(int(self.truncated[0]))}, {int(full[self.truncated[0]])} "
                "tokens). Add a larger bucket to keep them whole; TextTokens.truncated lists them.",
                TruncatedTextWarning,
                stacklevel=2,
            )

    @property
    def vocabulary_size(self) -> int | None:
        """The number of ids (the ``Embedding`` input_dim): the vocabulary's, or a Hugging
        Face tokenizer's; None for a plain callable."""
        if self.vocabulary is not None:
            return len(self.vocabulary)
        size = getattr(self.tokenizer, "get_vocab_size", None)
        return int(size()) if size is not None else None

    @property
    def lengths(self) -> np.ndarray:
        """Each text's length in token ids (at most the largest bucket)."""
        lengths: np.ndarray = self._lengths
        return lengths

    def gather(self, indices: np.ndarray, context: GatherContext) -> np.ndarray:
        """The token ids of ``indices``, padded to ``context.width`` (the step's bucket),
        or with buckets and no width, to the smallest bucket that holds these texts."""
        buckets = self._buckets
        if len(buckets) == 1:
            return super().gather(indices, context)
        self.report_bad(indices, context)
        width = context.width
        if width is None:
            longest = int(self._lengths[indices].max()) if len(indices) else 0
            width = buckets[int(np.searchsorted(buckets, longest))]
        batch: np.ndarray = self.values[indices, :width]  # one copy of just the columns used
        return batch

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """One sample's token ids as readable text, to check what the model receives:
        unknown words as ``[UNK]``, the trailing padding as ``[PAD]*n``.

        Example: ``text.decode(batch[1][0])`` gives ``"a red [UNK] on grass [PAD]*16"``.
        """
        values = np.asarray(ids).reshape(-1).tolist()
        padding = len(values) - len(np.trim_zeros(np.asarray(values, np.int64), "b"))
        words = []
        for i in values[: len(values) - padding]:
            if i == PAD_ID:
                words.append("[PAD]")
            elif self.vocabulary is not None:
                words.append(self.vocabulary.tokens[i] if i < len(self.vocabulary) else f"<{i}>")
            elif hasattr(self.tokenizer, "id_to_token"):
                token = self.tokenizer.id_to_token(i)  # type: ignore[union-attr]
                words.append(token or f"<{i}>")
            else:
                words.append(f"<{i}>")  # a plain callable cannot map ids back to text
        return " ".join(words + ([f"[PAD]*{padding}"] if padding else []))

    @property
    def ids(self) -> np.ndarray:
        """The ``(num_samples, length)`` ``int32`` token ids."""
        return self.values

    def __repr__(self) -> str:
        by = f"vocabulary of {len(self.vocabulary)}" if self.vocabulary else "custom tokenizer"
        if self.vocabulary is None and self.vocabulary_size is not None:
            by = f"tokenizer of {self.vocabulary_size} ids"
        buckets = self._buckets
        size = f"length={self.length}" if len(buckets) == 1 else f"buckets={buckets}"
        return f"TextTokens({len(self)} texts, {size}, {by})"


class TruncatedTextWarning(UserWarning):
    """Texts longer than the largest bucket were truncated to it."""


def _check_length_or_buckets(length: Any, buckets: Any) -> tuple[int, ...]:
    """The bucket boundaries (one, ``(length,)``, for a fixed length), checked."""
    if length is not None and buckets is not None:
        raise ValueError(
            f"Give length= (every text padded to one length) or buckets= (each batch "
            f"padded to the smallest boundary that holds it), not both; got length={length!r} "
            f"and buckets={buckets!r}."
        )
    if buckets is None:
        if length is None:
            raise TypeError(
                "TextTokens needs length= (token ids per text) or buckets= (padded lengths "
                "a batch may take, e.g. buckets=(16, 32, 64, 128))."
            )
        return (check_int(length, "length", what="ids per sample"),)
    if isinstance(buckets, (str, bytes)) or not isinstance(buckets, Sequence):
        raise TypeError(
            f"buckets must be a sequence of increasing positive integers, e.g. (16, 32, 64, "
            f"128); got {buckets!r}."
        )
    values = list(buckets)
    bad = [
        b
        for b in values
        if isinstance(b, (bool, np.bool_)) or not isinstance(b, (int, np.integer)) or b < 1
    ]
    if not values or bad:
        raise ValueError(
            f"buckets must be increasing positive integers, e.g. (16, 32, 64, 128); got "
            f"{buckets!r}{f' ({bad[0]!r} is not a positive integer)' if bad else ' (empty)'}."
        )
    if any(b >= c for b, c in itertools.pairwise(values)):
        raise ValueError(
            f"buckets must be strictly increasing, e.g. (16, 32, 64, 128); got {buckets!r}. "
            f"Sort them: buckets={tuple(sorted(set(values)))!r}."
        )
    return tuple(int(b) for b in values)


def _decode_texts(texts: Iterable[Any]) -> tuple[list[str], dict[int, str]]:
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


def _tokenize_all(
    strings: list[str],
    problems: Mapping[int, str],
    vocabulary: Vocabulary | None,
    tokenizer: Tokenizer | None,
    max_tokens: int | None,
    length: int,
) -> Tokenized:
    """Fits what needs fitting (on the good texts), then tokenizes every text."""
    fitted: dict[str, Any] = {}
    good = (s for i, s in enumerate(strings) if i not in problems)
    if isinstance(tokenizer, str):
        trained = train_subword_tokenizer(good, tokenizer, max_tokens)
        fitted["tokenizer"] = trained.to_str()
        tokenizer = trained
    elif tokenizer is None and vocabulary is None:
        vocabulary = Vocabulary.fit(good, max_tokens=max_tokens)
        fitted["vocabulary"] = vocabulary.tokens
    sequences: list[Sequence[int]]
    if tokenizer is None:
        assert vocabulary is not None
        sequences = [vocabulary.lookup(text) for text in strings]
    else:
        sequences = _tokenize(tokenizer, strings)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    return Tokenized(pad(sequences, length), lengths, fitted)


def _fingerprint(
    strings: list[str],
    problems: Mapping[int, str],
    vocabulary: Vocabulary | None,
    tokenizer: Tokenizer | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    """What the token ids depend on besides the length, for ``cache=``."""
    from importlib import metadata

    found: dict[str, Any] = {"kind": "tokens", "texts": texts_digest(strings, problems)}
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


def _tokenize(tokenizer: Tokenizer, strings: list[str]) -> list[Sequence[int]]:
    if hasattr(tokenizer, "encode_batch"):  # a Hugging Face tokenizers.Tokenizer
        return [encoding.ids for encoding in tokenizer.encode_batch(strings)]
    if not callable(tokenizer):
        raise TypeError(
            "tokenizer must be a callable str -> list[int] or a Hugging Face "
            f"tokenizers.Tokenizer; got {type(tokenizer).__name__}."
        )
    return [tokenizer(s) for s in strings]
