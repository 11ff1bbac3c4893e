"""Parquet and compressed Arrow image columns are converted once into memory-mappable
Arrow files, reused until the source file changes; uncompressed Arrow is read in place."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from conftest import id_table
from multimodal_dataset.tables.arrow_cache import is_compressed_arrow, mappable_column_file


def test_a_parquet_image_column_is_converted_once_and_reused(tmp_path):
    pq.write_table(id_table(range(30)), tmp_path / "t.parquet", row_group_size=4)
    first = mappable_column_file(str(tmp_path / "t.parquet"), "image", "parquet", 30, tmp_path)
    written = os.stat(first).st_mtime_ns
    again = mappable_column_file(str(tmp_path / "t.parquet"), "image", "parquet", 30, tmp_path)
    assert again == first and os.stat(again).st_mtime_ns == written
    assert os.path.dirname(first) == str(tmp_path / "arrow")
    with pa.memory_map(first) as mapped:
        table = pa.ipc.open_file(mapped).read_all()
    assert table.column_names == ["image"] and table.column("image") == id_table(range(30))["image"]
    assert not [name for name in os.listdir(tmp_path / "arrow") if name.endswith(".tmp")]


def test_a_changed_parquet_file_is_converted_again(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(id_table(range(10)), path)
    first = mappable_column_file(str(path), "image", "parquet", 10, tmp_path)
    pq.write_table(id_table(range(12)), path)
    second = mappable_column_file(str(path), "image", "parquet", 12, tmp_path)
    assert second != first
    with pa.memory_map(second) as mapped:
        assert pa.ipc.open_file(mapped).read_all().num_rows == 12


def test_uncompressed_arrow_is_read_in_place_and_compressed_feather_is_converted(tmp_path):
    table = id_table(range(50))
    with (
        pa.OSFile(str(tmp_path / "plain.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, table.schema) as writer,
    ):
        writer.write_table(table)
    feather.write_feather(table, tmp_path / "lz4.feather")
    assert not is_compressed_arrow(str(tmp_path / "plain.arrow"), "image")
    assert is_compressed_arrow(str(tmp_path / "lz4.feather"), "image")
    plain = mappable_column_file(str(tmp_path / "plain.arrow"), "image", "arrow", 50, tmp_path)
    assert plain == str(tmp_path / "plain.arrow")
    converted = mappable_column_file(str(tmp_path / "lz4.feather"), "image", "arrow", 50, tmp_path)
    assert not is_compressed_arrow(converted, "image")
