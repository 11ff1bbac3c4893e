"""Texts are validated, counted and tokenized a chunk at a time into one preallocated
array: the same ids, lengths, vocabulary and problems as all at once, from a list, a
pyarrow array or a table's record batches, in one process or several (also from a
script without a main guard), and never all held as Python strings."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multimodal_dataset import TextTokens
from multimodal_dataset.io.spilled import SPILL_MIN_BYTES
from multimodal_dataset.sources.text.streaming import TextChunks
from multimodal_dataset.sources.text.vocabulary import pad_ragged

TEXTS = [f"a caption {i % 13} of word{i % 7} and w{i % 29}" for i in range(500)]
BAD = [*TEXTS[:100], None, b"\xff\xfe bad bytes", *TEXTS[100:300], 7, *TEXTS[300:]]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 2**31 - 1), max_size=12), max_size=20),
    st.integers(1, 10),
)
def test_padding_a_ragged_list_matches_a_loop_over_the_rows(sequences, length):
    ids, lengths = pad_ragged(sequences, length)
    expected = np.zeros((len(sequences), length), np.int32)
    for row, s in enumerate(sequences):
        expected[row, : min(len(s), length)] = s[:length]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(lengths, [len(s) for s in sequences])
    assert ids.dtype == np.int32


def whole(texts, **options):
    """The texts tokenized in one chunk."""
    return TextTokens(TextChunks.of(texts, size=len(texts)), on_error="replace", **options)


def same(a, b):
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert a.problems == b.problems and a.vocabulary == b.vocabulary


@pytest.mark.parametrize("options", [{"length": 8}, {"buckets": (4, 8, 16)}])
def test_chunks_of_a_list_or_an_arrow_array_give_what_one_chunk_gives(options):
    pa = pytest.importorskip("pyarrow")
    expected = whole(BAD, **options)
    assert sorted(expected.problems) == [100, 101, 302]
    for texts in (BAD, np.array(BAD, dtype=object)):
        same(TextTokens(TextChunks.of(texts, size=37), on_error="replace", **options), expected)
    cells = [t if isinstance(t, str) else None for t in BAD]  # what an Arrow column holds
    chunked = TextTokens(TextChunks.of(pa.array(cells), size=37), on_error="replace", **options)
    same(chunked, whole(cells, **options))
    assert sorted(chunked.problems) == [100, 101, 302]


def test_a_bpe_tokenizer_is_trained_from_the_chunks_as_from_the_whole_list():
    pytest.importorskip("tokenizers")
    one = whole(TEXTS, length=12, tokenizer="bpe", max_tokens=60)
    chunked = TextTokens(TextChunks.of(TEXTS, size=50), length=12, tokenizer="bpe", max_tokens=60)
    np.testing.assert_array_equal(chunked.ids, one.ids)
    assert chunked.tokenizer.to_str() == one.tokenizer.to_str()


def test_many_token_ids_live_in_a_temporary_memory_map_that_goes_with_the_source():
    rows = SPILL_MIN_BYTES // (4 * 8) + 1
    small = TextTokens(TEXTS, length=8)
    tokens = TextTokens(
        [TEXTS[i % 500] for i in range(rows)], length=8, vocabulary=small.vocabulary
    )
    assert isinstance(tokens.ids, np.memmap) and tokens.ids.shape == (rows, 8)
    np.testing.assert_array_equal(tokens.ids[:500], small.ids)
    path = tokens.ids.filename
    del tokens
    gc.collect()
    assert not os.path.exists(path)


def test_a_script_without_a_main_guard_counts_and_tokenizes_in_worker_processes_as_in_one(
    tmp_path,
):
    script = tmp_path / "train.py"  # run as __main__, no `if __name__ == "__main__":`
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from multimodal_dataset import TextTokens
            from multimodal_dataset.sources.text import streaming

            texts = [f"caption {i % 17} of word{i % 5} and more{i % 3}" for i in range(3000)]
            used = []
            pool, counting = streaming._in_processes, streaming._counted_in_processes
            streaming._in_processes = lambda *args: used.append("ids") or pool(*args)
            streaming._counted_in_processes = (
                lambda *args: used.append("counts") or counting(*args)
            )
            streaming.PARALLEL_MIN, streaming.CHUNK = 100, 128
            parallel = TextTokens(texts, length=8)
            streaming.PARALLEL_MIN = 10**12
            serial = TextTokens(texts, length=8)
            assert used == ["counts", "ids"], used
            assert np.array_equal(parallel.ids, serial.ids)
            assert parallel.vocabulary == serial.vocabulary
            print("same ids")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0 and "same ids" in done.stdout, done.stderr[-2000:]


def test_a_table_hands_out_its_captions_a_record_batch_at_a_time_in_sample_order(
    tmp_path, monkeypatch
):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from multimodal_dataset.tables import arrow_tables
    from multimodal_dataset.tables.arrow_tables import FileTable

    monkeypatch.setattr(arrow_tables, "CHUNK", 64)
    paths = []
    for k in range(2):
        paths.append(str(tmp_path / f"part{k}.parquet"))
        part = pa.table({"caption": TEXTS[250 * k : 250 * (k + 1)]})
        pq.write_table(part, paths[-1], row_group_size=50)
    table = FileTable(paths, "parquet", "the table")
    rows = np.random.default_rng(0).permutation(500)[:300]
    chunks = table.text_chunks("caption", rows)
    seen = np.zeros(300, int)
    for positions, values in chunks:
        assert len(values) <= 64
        seen[positions] += 1
        assert values == [TEXTS[r] for r in rows[positions]]
    assert (seen == 1).all()
