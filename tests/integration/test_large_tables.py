"""A table whose image column is 512 MiB is trained from without loading it: anonymous
memory (heap, not the file-backed pages of memory maps) grows by less than a tenth of the
column (50 MiB), from reading the Parquet file to the end of an epoch, with workers in
threads and in processes. Loading the column would add all 512 MiB; measured growth is
3-5 MiB (13-20 MiB over a 2 GiB column, which this test used with a 200 MiB bound: the
same tenth, at a quarter of the time; the benchmarks' memory group measures an epoch of
a 2 GiB memory map).

Each image is a small PNG followed by 512 KiB of padding (decoders stop at the image's end),
so the column is large while decoding stays cheap; the padding is zeros, so the Parquet
file itself is small (its column is compressed) while the column is 512 MiB once read.
"""

from __future__ import annotations

import multiprocessing
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ID_COLUMNS, id_png, id_table
from multimodal_dataset import from_table
from multimodal_dataset.testing import anonymous_rss_mib, child_pids

pytestmark = pytest.mark.keras

ROWS, PADDING, ROW_GROUP = 1024, 2**19, 32  # 512 MiB of image bytes, 16 MiB row groups
LIMIT_MIB = 50


@pytest.fixture(scope="module")
def big_parquet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    path = folder / "big.parquet"
    schema = id_table([0]).schema
    padding = bytes(PADDING)
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        for start in range(0, ROWS, ROW_GROUP):
            table = id_table(range(start, start + ROW_GROUP)).to_pydict()
            for i, cell in enumerate(table["image"]):
                cell["bytes"] = id_png(start + i) + padding
            writer.write_table(pa.Table.from_pydict(table, schema=schema))
            del table
    pa.default_memory_pool().release_unused()
    yield path
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_an_epoch_over_a_512_mib_image_column_grows_anonymous_memory_by_under_50_mib(
    big_parquet, tmp_path, mode
):
    kwargs = {"workers": 2, "use_multiprocessing": mode == "processes"}
    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("fork", force=True)
    before = anonymous_rss_mib()
    peak, children = before, {}
    try:
        train, _ = from_table(
            big_parquet,
            **ID_COLUMNS,
            target="label",
            validation_split=0,
            batch_size=32,
            seed=1,
            cache_dir=tmp_path,
            **kwargs,
        )
        peak = max(peak, anonymous_rss_mib())
        train.on_epoch_begin()
        seen = []
        for i in range(len(train)):
            x, y = train[i]
            np.testing.assert_array_equal(np.round(x[0][:, 0, 0, 0] * 255), y % 256)
            seen.append(y)
            peak = max(peak, anonymous_rss_mib())
            for pid in child_pids():
                children[pid] = max(children.get(pid, 0.0), anonymous_rss_mib(pid))
            del x, y
        train.on_epoch_end()
        train.close()
    finally:
        multiprocessing.set_start_method(previous, force=True)
        shutil.rmtree(tmp_path / "arrow", ignore_errors=True)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(ROWS))
    # A forked worker starts with the parent's pages counted as its own: its growth is at
    # most its peak minus the parent's memory before the dataset existed.
    child_growth = sum(max(0.0, p - before) for p in children.values())
    growth = peak - before + child_growth
    print(
        f"{mode}: anonymous memory grew by {peak - before:.0f} MiB in the main process and "
        f"{child_growth:.0f} MiB in {len(children)} workers over a 512 MiB image column"
    )
    assert mode == "threads" or children, "no worker process was seen"
    assert growth < LIMIT_MIB, f"anonymous memory grew by {growth:.0f} MiB"
