"""Tables stored the way image datasets are: Parquet files (one, a folder, a glob, a list),
Arrow IPC and Feather files, pyarrow Tables, pandas frames of bytes, and Hugging Face
datasets, with images inside as bytes or ``{bytes, path}`` structs. Each reads as the same
table, and every bad input is named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from conftest import COLUMNS, ID_COLUMNS, assert_same_batches, id_table, ids_of
from multimodal_dataset import SampleError, TablePreprocessing, from_table

datasets = pytest.importorskip("datasets")


def write_parquet_shards(folder, ids, shards=3, row_group_size=7, **kwargs):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, part in enumerate(np.array_split(np.asarray(ids), shards)):
        paths.append(folder / f"train-{k:05d}-of-{shards:05d}.parquet")
        pq.write_table(id_table(part, **kwargs), paths[-1], row_group_size=row_group_size)
    return paths


def write_arrow(path, table, stream=False):
    with pa.OSFile(str(path), "wb") as sink:
        new = pa.ipc.new_stream if stream else pa.ipc.new_file
        with new(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=9)
    return path


def hf_dataset(ids):
    """A Hugging Face dataset of ``ids`` with a ``datasets.Image()`` column, as the Hub's."""
    return datasets.Dataset.from_dict(id_table(ids).to_pydict()).cast_column(
        "image", datasets.Image()
    )


IDS = np.arange(40)


def sources(tmp_path):
    """Every form of the same 40-row table (ids 0..39 in order)."""
    paths = write_parquet_shards(tmp_path / "shards", IDS)
    yield "one Parquet file", _one_parquet(tmp_path)
    yield "a folder", tmp_path / "shards"
    yield "a glob", str(tmp_path / "shards" / "train-*.parquet")
    yield "a list", [str(p) for p in paths]
    yield "binary column", _one_parquet(tmp_path, struct=False, name="binary.parquet")
    yield "Arrow file", write_arrow(tmp_path / "t.arrow", id_table(IDS))
    yield "Arrow stream", write_arrow(tmp_path / "s.arrow", id_table(IDS), stream=True)
    feather.write_feather(id_table(IDS), tmp_path / "t.feather")  # lz4-compressed
    yield "Feather (compressed)", tmp_path / "t.feather"
    yield "pyarrow Table", id_table(IDS)
    yield "DataFrame of bytes", id_table(IDS, struct=False).to_pandas()
    yield "datasets.Dataset", hf_dataset(IDS)
    hf_dataset(IDS).save_to_disk(str(tmp_path / "hf"))
    yield "load_from_disk", datasets.load_from_disk(str(tmp_path / "hf"))


def _one_parquet(tmp_path, struct=True, name="one.parquet"):
    pq.write_table(id_table(IDS, struct=struct), tmp_path / name, row_group_size=8)
    return tmp_path / name


@pytest.mark.keras
def test_every_table_form_reads_the_same_rows_in_the_same_order(tmp_path):
    for name, source in sources(tmp_path):
        ds = from_table(source, **ID_COLUMNS, validation_split=0, shuffle=False, batch_size=8)[0]
        seen = np.concatenate([ids_of(ds[i]) for i in range(len(ds))])
        np.testing.assert_array_equal(seen, IDS, err_msg=name)


@pytest.mark.keras
def test_every_table_form_gives_the_same_shuffled_stream_and_split(tmp_path):
    reference = None
    for name, source in sources(tmp_path):
        train, val = from_table(source, **ID_COLUMNS, target="label", batch_size=8, seed=4)
        train.on_epoch_end()
        stream = [ids_of(train[i]) for i in range(len(train))] + [ids_of(val[0])]
        if reference is None:
            reference = stream
        for got, want in zip(stream, reference, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.keras
def test_the_parquet_example_holds_the_same_samples_as_the_csv_example(example, parquet_example):
    from_csv = from_table(example, **COLUMNS, batch_size=16, seed=2)
    from_parquet = from_table(parquet_example, **COLUMNS, batch_size=16, seed=2)
    for a, b in zip(from_csv, from_parquet, strict=True):
        assert_same_batches(a, b)


@pytest.mark.keras
def test_a_hugging_face_dataset_after_shuffle_and_select_reads_its_own_order():
    shuffled = hf_dataset(IDS).shuffle(seed=3).select(range(10))
    ds = from_table(shuffled, **ID_COLUMNS, validation_split=0, shuffle=False, batch_size=10)[0]
    np.testing.assert_array_equal(ids_of(ds[0]), shuffled["id"])
    numbers = ds[0][0][1][:, 0]  # standardised ids: in the same order as the images
    np.testing.assert_array_equal(np.argsort(numbers), np.argsort(shuffled["id"]))


@pytest.mark.keras
def test_null_bytes_fall_back_to_the_path_next_to_the_table(tmp_path):
    from conftest import id_png

    (tmp_path / "7.png").write_bytes(id_png(7))
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "image": pa.array(
                [{"bytes": id_png(3), "path": "ignored.png"}, {"bytes": None, "path": "7.png"}],
                image_type,
            ),
            "id": [3, 7],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    ds = from_table(tmp_path / "t.parquet", **ID_COLUMNS, validation_split=0, shuffle=False)[0]
    np.testing.assert_array_equal(ids_of(ds[0]), [3, 7])  # bytes win; null bytes: the path


# ----------------------------------------------------------------- predefined splits


@pytest.mark.keras
def test_a_predefined_validation_split_is_preprocessed_with_the_training_fit(tmp_path):
    train_path = _one_parquet(tmp_path)
    val_table = id_table(np.arange(100, 110))
    pq.write_table(val_table, tmp_path / "validation.parquet")
    train, val = from_table(
        train_path,
        validation=tmp_path / "validation.parquet",
        image="image",
        text="caption",
        numeric=["id"],
        image_size=(2, 2),
        text_length=2,
        batch_size=10,
    )
    assert len(train.input_structure.fields[0].array) == 40 and len(val) == 1
    vocabulary = train.preprocessing.vocabulary
    assert "109" not in vocabulary.tokens  # fitted on the training rows only
    (x,) = val[0]  # no target: inputs only
    np.testing.assert_array_equal(ids_of(val[0]), np.arange(100, 110))
    standardizer = train.preprocessing.standardizer
    np.testing.assert_allclose(standardizer.mean, [19.5])
    np.testing.assert_allclose(
        x[2][:, 0], (np.arange(100, 110) - 19.5) / standardizer.std[0], rtol=1e-5
    )


def test_validation_and_validation_split_together_are_refused(tmp_path):
    path = _one_parquet(tmp_path)
    with pytest.raises(ValueError, match=r"either validation= .* or validation_split="):
        from_table(path, validation=path, validation_split=0.1, **ID_COLUMNS)


@pytest.mark.keras
def test_a_dataset_dict_split_reads_and_the_dict_itself_lists_its_splits():
    splits = datasets.DatasetDict({"train": hf_dataset(IDS[:30]), "test": hf_dataset(IDS[30:])})
    _, val = from_table(splits["train"], validation=splits["test"], **ID_COLUMNS, batch_size=10)
    assert len(val) == 1
    np.testing.assert_array_equal(ids_of(val[0]), IDS[30:])
    with pytest.raises(
        TypeError, match=r"splits 'train', 'test'; pass one split.*dataset\['train'\]"
    ):
        from_table(splits, **ID_COLUMNS)


# ----------------------------------------------------------------- saved preprocessing


@pytest.mark.keras
def test_saved_preprocessing_reads_a_new_parquet_file_as_the_training_rows_were(tmp_path):
    train, _ = from_table(
        _one_parquet(tmp_path),
        image="image",
        text="caption",
        numeric=["id"],
        target="label",
        target_kind="float",
        image_size=(2, 2),
        text_length=3,
    )
    train.preprocessing.save(tmp_path / "pre.json")
    loaded = TablePreprocessing.load(tmp_path / "pre.json")
    pq.write_table(id_table([5, 2, 9]), tmp_path / "new.parquet")
    new = loaded.dataset(tmp_path / "new.parquet", batch_size=3)
    _, targets = new[0]
    np.testing.assert_array_equal(ids_of(new[0]), [5, 2, 9])
    np.testing.assert_array_equal(targets, [5.0, 2.0, 9.0])
    same = train.preprocessing.dataset(id_table([5, 2, 9]), batch_size=3)
    assert_same_batches(new, same)


# ----------------------------------------------------------------------- bad input


def test_a_shard_missing_a_column_is_named_with_the_column(tmp_path):
    paths = write_parquet_shards(tmp_path, IDS)
    pq.write_table(id_table(IDS[:5]).drop_columns(["caption"]), paths[1])
    with pytest.raises(ValueError, match=r"train-00001-of-00003.parquet' has no column 'caption'"):
        from_table(tmp_path, **ID_COLUMNS, text="caption", text_length=2)


def test_a_shard_with_a_retyped_column_is_named_with_both_types(tmp_path):
    paths = write_parquet_shards(tmp_path, IDS)
    table = id_table(IDS[:5])
    table = table.set_column(1, "id", table["id"].cast(pa.string()))
    pq.write_table(table, paths[2])
    with pytest.raises(
        ValueError, match=r"'id' is string in .*train-00002.* but int64 in the first"
    ):
        from_table(tmp_path, **ID_COLUMNS)


def test_an_empty_glob_names_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pattern '.*nothing-\*\.parquet' matches no file"):
        from_table(str(tmp_path / "nothing-*.parquet"), **ID_COLUMNS)


def test_a_folder_without_table_files_says_so(tmp_path):
    with pytest.raises(ValueError, match=r"holds no \.parquet, \.arrow or \.tar files"):
        from_table(tmp_path, **ID_COLUMNS)


def test_a_list_mixing_formats_names_each_files_format(tmp_path):
    parquet = _one_parquet(tmp_path)
    arrow = write_arrow(tmp_path / "t.arrow", id_table(IDS))
    with pytest.raises(
        ValueError, match=r"share a format; got arrow: .*t\.arrow'; parquet: .*one\.parquet'"
    ):
        from_table([parquet, arrow], **ID_COLUMNS)


def test_a_column_that_is_not_images_is_refused_with_what_it_holds(tmp_path):
    with pytest.raises(
        TypeError, match=r"Column 'id' of .* holds int64, which is not an image column"
    ):
        from_table(_one_parquet(tmp_path), image="id", image_size=(2, 2))


BAD_CELLS = {
    "null bytes, no path": ({"bytes": None, "path": None}, "bytes are null and it has no path"),
    "empty bytes": ({"bytes": b"", "path": None}, "bytes are empty and it has no path"),
    "not an image": ({"bytes": b"not an image", "path": None}, "not an image Pillow can read"),
    "truncated": (None, "truncated"),
    "missing path": ({"bytes": None, "path": "gone.png"}, "path '.*gone.png' does not exist"),
}


@pytest.mark.keras
@pytest.mark.parametrize("case", list(BAD_CELLS))
def test_a_bad_image_cell_names_the_shard_the_row_and_the_column(tmp_path, case):
    from conftest import id_png

    cell, message = BAD_CELLS[case]
    if cell is None:
        cell = {"bytes": id_png(1)[:-30], "path": None}
    paths = write_parquet_shards(tmp_path, IDS[:20], shards=2)
    table = id_table(np.arange(10, 20)).to_pylist()
    table[4]["image"] = cell
    pq.write_table(pa.Table.from_pylist(table, schema=id_table([0]).schema), paths[1])
    ds = from_table(tmp_path, **ID_COLUMNS, validation_split=0, shuffle=False, batch_size=20)[0]
    where = (
        r"sample 14 \(table row 14, column 'image'\): the image in file "
        r"'.*train-00001-of-00002.parquet', row 4 of that file"
    )
    with pytest.raises(SampleError, match=where + ".*" + message):
        ds[0]
    replaced = from_table(
        tmp_path, **ID_COLUMNS, validation_split=0, shuffle=False, batch_size=20, on_error="replace"
    )[0]
    with pytest.warns(UserWarning, match="1 sample"):
        replaced.on_epoch_begin()
        batch = replaced[0]
        replaced.on_epoch_end()
    assert ids_of(batch)[14] == 0 and list(np.delete(ids_of(batch), 14)) == [
        *range(14),
        *range(15, 20),
    ]


def zero_rows_in_footer(path):
    """Rewrites a Parquet file's footer so that its total says 0 rows while its row group
    still holds them, as older writers left it (the thrift field num_rows, an i64 varint,
    patched in place where the file then reads as such)."""
    import struct

    data = path.read_bytes()
    size = struct.unpack("<I", data[-8:-4])[0]
    start = len(data) - 8 - size
    rows = pq.ParquetFile(path).metadata.num_rows
    field = bytes([0x16, rows * 2])  # field delta 1, type i64; zigzag varint (< 64 rows)
    for offset in range(start, len(data) - 9):
        if data[offset : offset + 2] != field:
            continue
        patched = data[: offset + 1] + b"\x00" + data[offset + 2 :]
        path.write_bytes(patched)
        try:
            metadata = pq.ParquetFile(path).metadata
            if metadata.num_rows == 0 and metadata.row_group(0).num_rows == rows:
                return
        except Exception:
            pass
    raise AssertionError("the footer's row count was not found")


@pytest.mark.keras
def test_a_parquet_file_whose_footer_says_zero_rows_is_read_by_its_row_groups(tmp_path):
    path = tmp_path / "older_writer.parquet"
    pq.write_table(pa.table({"x": [1.0, 2, 3, 4, 5, 6], "label": [0, 1, 0, 1, 0, 1]}), path)
    zero_rows_in_footer(path)
    train, val = from_table(str(path), numeric=["x"], target="label", validation_split=0.5)
    assert train.num_samples + val.num_samples == 6
    labels = [np.asarray(ds[i][1]) for ds in (train, val) for i in range(len(ds))]
    assert sorted(np.concatenate(labels).tolist()) == [0, 0, 0, 1, 1, 1]


PARQUET_TESTING = Path(__file__).parents[1] / "data" / "parquet-testing"


@pytest.mark.parametrize(
    ("file", "column", "kind"),
    [
        ("nested_maps.snappy.parquet", "a", "map<string, map<int32, bool"),
        ("list_columns.parquet", "int64_list", "list<item: int64>"),
    ],
)
@pytest.mark.parametrize("form", ["file", "pyarrow table"])
def test_a_nested_column_given_as_numeric_names_its_file_column_and_type(file, column, kind, form):
    path = PARQUET_TESTING / file
    table = str(path) if form == "file" else pq.read_table(path)
    with pytest.raises(
        ValueError, match=rf"numeric='{column}': column '{column}' .*{re.escape(kind)}"
    ):
        from_table(table, numeric=[column], validation_split=0)


def test_a_struct_column_given_as_numeric_names_its_type(tmp_path):
    pq.write_table(pa.table({"s": pa.array([{"x": 1}] * 4), "y": [0, 1] * 2}), tmp_path / "s.pq")
    with pytest.raises(ValueError, match=r"column 's' of '.*s.pq' holds struct<x: int64>"):
        from_table(str(tmp_path / "s.pq"), numeric=["s"], target="y", validation_split=0)


@pytest.mark.keras
def test_a_corrupt_data_page_names_the_file_and_the_column(tmp_path):
    source = PARQUET_TESTING / "alltypes_plain.parquet"
    metadata = pq.ParquetFile(source).metadata
    page = metadata.row_group(0).column(0).data_page_offset  # column 'id'
    data = bytearray(source.read_bytes())
    data[page : page + 8] = b"\xff" * 8
    (tmp_path / "corrupt.parquet").write_bytes(bytes(data))
    with pytest.raises(
        ValueError,
        match=r"Column 'id' of '.*corrupt.parquet' cannot be read (?s:.*)corrupt or truncated",
    ):
        from_table(str(tmp_path / "corrupt.parquet"), numeric=["id"], validation_split=0)
    assert len(from_table(str(source), numeric=["id"], validation_split=0)[0]) == 1
