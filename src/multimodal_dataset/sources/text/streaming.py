"""Texts a chunk at a time: validated, counted (to fit a vocabulary or train BPE) and
tokenized chunk by chunk into one preallocated ``(N, length)`` ``int32`` array, so a
table's captions are never all Python strings at once.

`TextChunks` is where the texts come from: a sequence or a pyarrow array sliced in
chunks, or a table's column read a record batch at a time (`from_table`). The ids go to
a temporary memory-mapped ``.npy`` once they are large (shared by worker processes, see
``io.spilled``); with many texts, the built-in word tokenizer runs in several processes.
"""

from __future__ import annotations

import collections
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from multimodal_dataset._utils.processes import spawn_context
from multimodal_dataset.io.spilled import preallocated
from multimodal_dataset.sources.text.token_cache import TextsDigest, Tokenized
from multimodal_dataset.sources.text.tokenizing import (
    Tokenizer,
    decode_texts,
    tokenize,
    train_subword_tokenizer,
)
from multimodal_dataset.sources.text.vocabulary import Vocabulary, count_words, pad_ragged

#: Texts per chunk: a few MB of Python strings at a time.
CHUNK = 1 << 16
#: From this many texts on, the built-in word tokenizer runs in worker processes (one
#: per core, up to `MAX_PROCESSES`): starting one costs about a second (a fresh
#: interpreter importing the library), as much as tokenizing ~300,000 captions.
PARALLEL_MIN = 1_000_000
MAX_PROCESSES = 8

#: One chunk: the sample positions it covers and their raw texts (str, bytes, None...).
Chunk = tuple[np.ndarray, Sequence[Any]]


class TextChunks:
    """The texts of ``count`` samples, read a chunk at a time, as often as asked.

    Args:
        count: How many texts there are.
        chunks: Returns a new iterator of ``(positions, texts)`` chunks that together
            cover every position in ``[0, count)`` once.
    """

    def __init__(self, count: int, chunks: Callable[[], Iterator[Chunk]]) -> None:
        self.count = int(count)
        self._chunks = chunks

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Chunk]:
        return self._chunks()

    @classmethod
    def of(cls, texts: Any, size: int = CHUNK) -> TextChunks:
        """``texts`` (a sequence, a numpy array, a pyarrow Array or ChunkedArray) in
        chunks of ``size``."""
        if isinstance(texts, TextChunks):
            return texts
        count = len(texts)
        arrow = hasattr(texts, "to_pylist")

        def chunks() -> Iterator[Chunk]:
            for start in range(0, count, size):
                stop = min(start + size, count)
                part = texts[start:stop]
                values = part.to_pylist() if arrow else part
                yield np.arange(start, stop, dtype=np.int64), values

        return cls(count, chunks)


class DecodedChunks:
    """`TextChunks` validated (see `decode_texts`): chunks of strings, and, after a pass,
    the problem of every bad text by position."""

    def __init__(self, texts: TextChunks) -> None:
        self.texts = texts
        self.problems: dict[int, str] = {}

    def __iter__(self) -> Iterator[tuple[np.ndarray, list[str], set[int]]]:
        """``(positions, strings, bad)`` per chunk, ``bad`` the positions in the chunk's
        list that are not good texts."""
        for positions, values in self.texts:
            strings, problems = decode_texts(values)
            for i, why in problems.items():
                self.problems[int(positions[i])] = why
            yield positions, strings, set(problems)

    def good(self) -> Iterator[str]:
        """Every good text, in chunk order."""
        for _, strings, bad in self:
            yield from (s for i, s in enumerate(strings) if i not in bad)


def fit(
    texts: DecodedChunks,
    vocabulary: Vocabulary | None,
    tokenizer: Tokenizer | None,
    max_tokens: int | None,
) -> tuple[Vocabulary | None, Tokenizer | None, dict[str, Any]]:
    """Fits what needs fitting on the good texts, one pass, chunk by chunk: the word
    counts of a vocabulary, or a BPE tokenizer trained from an iterator of them; nothing
    (no pass) for a given vocabulary or tokenizer."""
    fitted: dict[str, Any] = {}
    if isinstance(tokenizer, str):
        trained = train_subword_tokenizer(texts.good(), tokenizer, max_tokens)
        fitted["tokenizer"] = trained.to_str()
        tokenizer = trained
    elif tokenizer is None and vocabulary is None:
        workers = _processes(len(texts.texts), None)
        if workers > 1:
            counts = _counted_in_processes(texts, workers)
            vocabulary = Vocabulary.from_counts(counts, max_tokens=max_tokens)
        else:
            vocabulary = Vocabulary.fit(texts.good(), max_tokens=max_tokens)
        fitted["vocabulary"] = vocabulary.tokens
    return vocabulary, tokenizer, fitted


def tokenize_chunks(
    texts: TextChunks,
    vocabulary: Vocabulary | None,
    tokenizer: Tokenizer | None,
    max_tokens: int | None,
    length: int,
    owner: Any,
) -> tuple[Tokenized, dict[int, str]]:
    """Fits what needs fitting, then tokenizes every text into one ``(count, length)``
    ``int32`` array (a temporary memory map, removed with ``owner``, once it is 1 MiB
    or more), chunk by chunk.

    Returns:
        The ids, each text's length before truncation and what was fitted; and the
        problem of each bad text.
    """
    decoded = DecodedChunks(texts)  # each pass records the same problems
    vocabulary, tokenizer, fitted = fit(decoded, vocabulary, tokenizer, max_tokens)
    count = len(texts)
    ids = preallocated((count, length), np.int32, owner)
    lengths = np.zeros(count, np.int64)
    workers = _processes(count, tokenizer)
    if workers > 1:
        assert vocabulary is not None
        parts: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]] = _in_processes(
            decoded, vocabulary, length, workers
        )
    else:
        parts = (
            (positions, *pad_ragged(_encode(strings, vocabulary, tokenizer), length))
            for positions, strings, _ in decoded
        )
    for positions, chunk_ids, chunk_lengths in parts:
        ids[positions] = chunk_ids
        lengths[positions] = chunk_lengths
    if isinstance(ids, np.memmap):
        ids.flush()
    return Tokenized(ids, lengths, fitted), decoded.problems


def texts_fingerprint(texts: TextChunks) -> tuple[str, dict[int, str]]:
    """A hash of every text in order (and of which were bad), one pass; and the
    problems."""
    decoded = DecodedChunks(texts)
    digest = TextsDigest()
    for _, strings, _ in decoded:
        digest.update(strings)
    return digest.hexdigest(decoded.problems), decoded.problems


def _encode(
    strings: list[str], vocabulary: Vocabulary | None, tokenizer: Tokenizer | None
) -> list[Sequence[int]]:
    if tokenizer is None:
        assert vocabulary is not None
        return [vocabulary.lookup(text) for text in strings]
    return tokenize(tokenizer, strings)


def _processes(count: int, tokenizer: Tokenizer | None) -> int:
    """Worker processes for tokenizing ``count`` texts: only the built-in word tokenizer
    (a Hugging Face tokenizer encodes batches in its own threads; a callable may not
    pickle), only for `PARALLEL_MIN` texts or more."""
    if tokenizer is not None or count < PARALLEL_MIN:
        return 1
    return max(1, min(MAX_PROCESSES, os.cpu_count() or 1))


# In a worker process: the vocabulary, set once by the pool's initializer.
_VOCABULARY: Vocabulary | None = None


def _init(tokens: list[str]) -> None:
    global _VOCABULARY
    _VOCABULARY = Vocabulary(tokens)


def _encode_chunk(strings: list[str], length: int) -> tuple[np.ndarray, np.ndarray]:
    assert _VOCABULARY is not None
    return pad_ragged([_VOCABULARY.lookup(text) for text in strings], length)


def _counted_in_processes(decoded: DecodedChunks, workers: int) -> Counter[str]:
    """The words of the good texts counted a chunk per task in ``workers`` spawned
    processes, then added up; at most two chunks per process in flight."""
    total: Counter[str] = Counter()
    with ProcessPoolExecutor(workers, mp_context=spawn_context()) as pool:
        pending: collections.deque[Future[Counter[str]]] = collections.deque()
        for _, strings, bad in decoded:
            good = [s for i, s in enumerate(strings) if i not in bad] if bad else strings
            pending.append(pool.submit(count_words, good))
            if len(pending) >= 2 * workers:
                total.update(pending.popleft().result())
        while pending:
            total.update(pending.popleft().result())
    return total


def _in_processes(
    decoded: DecodedChunks, vocabulary: Vocabulary, length: int, workers: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The chunks tokenized in ``workers`` spawned processes, in order, at most two per
    process in flight (bounded memory)."""
    context = spawn_context()  # spawned: safe beside any backend's threads
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init, initargs=(vocabulary.tokens,)
    ) as pool:
        pending: collections.deque[tuple[np.ndarray, Future[Any]]] = collections.deque()
        for positions, strings, _ in decoded:
            pending.append((positions, pool.submit(_encode_chunk, strings, length)))
            if len(pending) >= 2 * workers:
                positions, future = pending.popleft()
                yield (positions, *future.result())
        while pending:
            positions, future = pending.popleft()
            yield (positions, *future.result())
