"""The token-id cache: texts are tokenized (and a vocabulary fitted) once per fingerprint,
never served stale, rebuilt when damaged, safe to fill from several processes, and a
clear error where it cannot be used."""

from __future__ import annotations

import errno
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from multimodal_dataset import CacheError, CacheWarning, TextTokens, Vocabulary
from multimodal_dataset.sources.text import tokens as text_module

TEXTS = [f"caption {i} of a {'red' if i % 2 else 'blue'} shape {'x ' * (i % 7)}" for i in range(40)]


@pytest.fixture
def tokenizes(monkeypatch):
    """Counts the times texts are tokenized (every source, cached or not, goes through it)."""
    calls = []
    tokenize_chunks = text_module.tokenize_chunks

    def counting(*args, **kwargs):
        calls.append(1)
        return tokenize_chunks(*args, **kwargs)

    monkeypatch.setattr(text_module, "tokenize_chunks", counting)
    return calls


def folders(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("tokens-*"))


@pytest.mark.parametrize(
    "options",
    [{"length": 6}, {"buckets": (2, 4, 8)}, {"length": 6, "max_tokens": 5}],
    ids=["length", "buckets", "max_tokens"],
)
def test_texts_are_tokenized_once_and_the_next_source_reads_the_same_ids_and_vocabulary(
    tmp_path, tokenizes, options
):
    expected = TextTokens(TEXTS, **options)
    first = TextTokens(TEXTS, cache=tmp_path, **options)
    second = TextTokens(TEXTS, cache=tmp_path, **options)
    assert len(tokenizes) == 2  # the uncached source and the first cached one
    for source in (first, second):
        np.testing.assert_array_equal(source.ids, expected.ids)
        np.testing.assert_array_equal(source.lengths, expected.lengths)
        np.testing.assert_array_equal(source.truncated, expected.truncated)
        assert source.vocabulary == expected.vocabulary
    assert isinstance(second.ids, np.memmap)  # read from disk, not held in memory


@pytest.mark.parametrize(
    "change",
    [
        {"texts": [*TEXTS[:-1], "a different last caption"]},
        {"texts": TEXTS[::-1]},
        {"length": 7},
        {"max_tokens": 6},
        {"vocabulary": Vocabulary.fit(["red blue shape"])},
    ],
    ids=["one text", "order", "length", "max_tokens", "vocabulary"],
)
def test_anything_that_changes_the_ids_gets_its_own_folder_never_the_other_ones_ids(
    tmp_path, change
):
    TextTokens(TEXTS, length=6, cache=tmp_path)
    options = {"texts": TEXTS, "length": 6} | change
    texts = options.pop("texts")
    cached = TextTokens(texts, cache=tmp_path, **options)
    np.testing.assert_array_equal(cached.ids, TextTokens(texts, **options).ids)
    assert len(folders(tmp_path)) == 2


def test_a_trained_bpe_tokenizer_is_kept_with_the_ids(tmp_path, tokenizes):
    pytest.importorskip("tokenizers")
    options = {"length": 8, "tokenizer": "bpe", "max_tokens": 40}
    first = TextTokens(TEXTS, cache=tmp_path, **options)
    second = TextTokens(TEXTS, cache=tmp_path, **options)
    assert len(tokenizes) == 1
    assert second.tokenizer.to_str() == first.tokenizer.to_str()
    np.testing.assert_array_equal(second.ids, first.ids)


def test_a_hugging_face_tokenizer_is_keyed_by_its_whole_definition(tmp_path):
    pytest.importorskip("tokenizers")
    small = TextTokens(TEXTS, length=8, tokenizer="bpe", max_tokens=30).tokenizer
    large = TextTokens(TEXTS, length=8, tokenizer="bpe", max_tokens=60).tokenizer
    a = TextTokens(TEXTS, length=8, tokenizer=small, cache=tmp_path)
    b = TextTokens(TEXTS, length=8, tokenizer=large, cache=tmp_path)
    assert len(folders(tmp_path)) == 2
    assert not np.array_equal(a.ids, b.ids)


def test_a_plain_callable_tokenizer_is_refused_because_it_cannot_be_fingerprinted(tmp_path):
    with pytest.raises(ValueError, match="a plain callable cannot be fingerprinted"):
        TextTokens(TEXTS, length=6, tokenizer=lambda s: [len(s)], cache=tmp_path)


def test_a_damaged_folder_is_reported_and_rebuilt(tmp_path, tokenizes):
    expected = TextTokens(TEXTS, length=6, cache=tmp_path).ids.copy()
    ids = tmp_path / folders(tmp_path)[0] / "ids.npy"
    data = bytearray(ids.read_bytes())
    data[-1] ^= 0xFF
    ids.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="fail their checksum"):
        rebuilt = TextTokens(TEXTS, length=6, cache=tmp_path)
    np.testing.assert_array_equal(rebuilt.ids, expected)
    assert len(tokenizes) == 2
    (tmp_path / folders(tmp_path)[0] / "meta.json").write_text("{not json")
    with pytest.warns(CacheWarning, match="damaged"):
        TextTokens(TEXTS, length=6, cache=tmp_path)


@pytest.mark.parametrize("planted", ["pipe", "sparse", "link"])
def test_a_planted_meta_or_ids_file_is_refused_unread_and_the_folder_rebuilt(tmp_path, planted):
    """A named pipe would block forever, a sparse 1 GiB meta be read whole, a link to a
    file outside be read as ids: each is reported and rebuilt, nothing read through it."""
    import os

    expected = TextTokens(TEXTS, length=6, cache=tmp_path / "cache").ids.copy()
    folder = tmp_path / "cache" / folders(tmp_path / "cache")[0]
    if planted == "link":
        outside = tmp_path / "outside.npy"
        np.save(outside, np.zeros_like(expected))
        (folder / "ids.npy").unlink()
        (folder / "ids.npy").symlink_to(outside)
    else:
        (folder / "meta.json").unlink()
        if planted == "pipe":
            os.mkfifo(folder / "meta.json")
        else:
            with open(folder / "meta.json", "wb") as sparse:
                sparse.truncate(1 << 30)
    expected_problem = {"pipe": "named pipe", "sparse": "more than", "link": "not a regular"}
    with pytest.warns(CacheWarning, match=expected_problem[planted]):
        rebuilt = TextTokens(TEXTS, length=6, cache=tmp_path / "cache")
    np.testing.assert_array_equal(rebuilt.ids, expected)
    if planted == "link":
        assert not np.load(outside).any()  # the file outside is untouched


def build(cache, barrier, queue):
    barrier.wait()
    queue.put(TextTokens(TEXTS, length=6, cache=cache).ids.tolist())


def test_processes_filling_one_cache_together_all_get_the_same_ids(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(3), context.Queue()
    processes = [context.Process(target=build, args=(tmp_path, barrier, queue)) for _ in range(3)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    expected = TextTokens(TEXTS, length=6).ids.tolist()
    assert results == [expected] * 3
    assert len(folders(tmp_path)) == 1  # one folder, no temporary ones left


def test_a_cache_directory_that_is_not_writable_says_so(tmp_path, monkeypatch):
    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(CacheError, match=r"is not writable .* cache=None"):
        TextTokens(TEXTS, length=6, cache=tmp_path / "cache")


def test_a_full_disk_is_an_error_and_leaves_no_half_written_folder(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(CacheError, match="Not enough disk space"):
        TextTokens(TEXTS, length=6, cache=tmp_path)
    assert list(tmp_path.glob("tokens-*")) == []
