"""`TextTokens`: raw texts as ``int32`` token ids, padded to one length or per batch to
the smallest of several (``buckets``).

The ids come from the built-in `Vocabulary` (see ``vocabulary``), a subword tokenizer
trained here, a callable ``str -> list[int]``, or a Hugging Face ``tokenizers``
``Tokenizer`` (see ``tokenizing``); ``cache=`` keeps them on disk (``token_cache``).
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from multimodal_dataset._utils.checks import check_int
from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset.sources.protocol import (
    GatherContext,
    OnError,
    PrecomputedSource,
    check_on_error,
    check_rows,
)
from multimodal_dataset.sources.text.streaming import (
    TextChunks,
    texts_fingerprint,
    tokenize_chunks,
)
from multimodal_dataset.sources.text.token_cache import Tokenized, cached_tokens
from multimodal_dataset.sources.text.tokenizing import Tokenizer, tokens_fingerprint
from multimodal_dataset.sources.text.vocabulary import PAD_ID, Vocabulary


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
        texts: One string per sample (``bytes`` are decoded as UTF-8): a sequence, a
            numpy array or a pyarrow array, read a chunk of 65,536 at a time (never all
            as Python strings at once).
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
        texts: Sequence[Any] | np.ndarray | TextChunks,
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
        chunks = TextChunks.of(texts)
        count = len(chunks)
        problems: dict[int, str] = {}
        given = (
            Vocabulary.load(vocabulary)
            if isinstance(vocabulary, (str, os.PathLike))
            else vocabulary
        )
        self.length = self._buckets[-1]

        def tokenize() -> Tokenized:
            result, found = tokenize_chunks(
                chunks, given, tokenizer, max_tokens, self.length, owner=self
            )
            problems.update(found)
            return result

        if cache is None:
            result = tokenize()
        else:
            digest, found = texts_fingerprint(chunks)
            problems.update(found)
            fingerprint = tokens_fingerprint(digest, given, tokenizer, max_tokens)
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
        problems = dict(sorted(problems.items()))
        #: The samples whose texts were longer than ``length`` (the largest bucket).
        self._is_truncated = full > self.length
        self.truncated = np.flatnonzero(self._is_truncated)
        super().__init__(
            result.ids,
            problems,
            on_error,
            check_rows(rows, count, "TextTokens"),
            column,
        )
        self.raise_or_keep("TextTokens")
        if len(self._buckets) > 1 and len(self.truncated):
            warnings.warn(
                f"TextTokens{f' (column {column!r})' if column else ''}: "
                f"{len(self.truncated)} of {count} texts are longer than the largest "
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
        if len(self.truncated):
            cut = indices[self._is_truncated[indices]]
            if len(cut):
                context.truncated += cut.tolist()
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
