"""WebDataset tar shards as a table: the shards the webdataset library writes read as the
same rows as a Parquet table of the same samples, JSON fields and image alternatives are
columns, and every bad shard or sample is named by shard, key and member."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import ID_COLUMNS, assert_same_batches, id_png, id_table, ids_of, write_shards
from multimodal_dataset import SampleError, from_table, from_webdataset
from multimodal_dataset.io import tar_index
from multimodal_dataset.io.tar_index import shard_index, split_key
from multimodal_dataset.tables.reading import expand_braces, read_table

pytest.importorskip("webdataset")

IDS = np.arange(30)
WDS = {"image": "png", "numeric": ["json.id"], "image_size": (2, 2)}


@pytest.mark.parametrize(
    ("name", "key", "extension"),
    [
        ("000123.jpg", "000123", "jpg"),
        ("dir/000123.seg.png", "dir/000123", "seg.png"),
        ("a.b/c.txt", "a.b/c", "txt"),
        ("noextension", "noextension", ""),
    ],
)
def test_a_member_name_splits_into_key_and_extension_by_webdatasets_rule(name, key, extension):
    assert split_key(name) == (key, extension)


def test_brace_notation_expands_ranges_with_their_padding_and_lists():
    assert expand_braces("s/{00008..00010}.tar") == ["s/00008.tar", "s/00009.tar", "s/00010.tar"]
    assert expand_braces("{a,b}-{1..2}.tar") == ["a-1.tar", "a-2.tar", "b-1.tar", "b-2.tar"]


@pytest.mark.keras
def test_shards_read_as_the_same_batches_as_a_parquet_table_of_the_same_samples(tmp_path):
    import pyarrow.parquet as pq

    write_shards(tmp_path / "shards", IDS)
    pq.write_table(id_table(IDS), tmp_path / "t.parquet")
    for pattern in ["{00000..00002}.tar", "*.tar", ""]:
        shards = str(tmp_path / "shards" / pattern)
        from_shards = from_webdataset(shards, **WDS, target="cls", batch_size=7, seed=3)
        from_parquet = from_table(
            tmp_path / "t.parquet", **ID_COLUMNS, target="label", batch_size=7, seed=3
        )
        for a, b in zip(from_shards, from_parquet, strict=True):
            assert_same_batches(a, b)


def tar_members(path):
    """``(name, data offset, size)`` of each member, as the tarfile module reads them."""
    with tarfile.open(path) as archive:
        return [(m.name, m.offset_data, m.size) for m in archive]


def test_the_index_holds_each_members_offset_and_small_members_and_is_mapped_after(
    tmp_path, monkeypatch
):
    (path,) = write_shards(tmp_path, IDS[:4], shards=1)
    index = shard_index(str(path), tmp_path / "cache")
    assert (index.samples, set(index.kinds)) == (4, {"cls", "json", "png", "txt"})
    by_name = {name: (offset, size) for name, offset, size in tar_members(path)}
    with index.columns() as columns:
        assert [columns.key(i) for i in range(4)] == [f"sample{i:06d}" for i in range(4)]
        for kind in index.kinds:
            offsets, sizes, gzipped = columns.members(kind)
            names = [f"sample{i:06d}.{kind}" for i in range(4)]
            assert list(zip(offsets, sizes, strict=True)) == [by_name[n] for n in names]
            assert not gzipped.any()
        assert columns.data("png") is None  # images stay in the shard
        assert columns.data("txt").to_pylist() == [
            path.read_bytes()[o : o + s]
            for o, s in (by_name[f"sample{i:06d}.txt"] for i in range(4))
        ]
    (file,) = (tmp_path / "cache" / "tar_index").iterdir()
    assert file.suffix == ".arrow" and file.stat().st_size < 8000

    def no_reading(*args):
        raise AssertionError("the shard was read again")

    monkeypatch.setattr(tar_index._Indexer, "read", no_reading)
    assert shard_index(str(path), tmp_path / "cache") == index


def test_a_stale_or_foreign_index_file_is_made_again(tmp_path):
    (path,) = write_shards(tmp_path, IDS[:4], shards=1)
    index = shard_index(str(path), tmp_path / "cache")
    Path(index.file).write_bytes(b"not an arrow file")
    assert shard_index(str(path), tmp_path / "cache").samples == 4


@pytest.mark.keras
def test_captions_classes_and_json_come_from_the_index_not_the_shards(tmp_path, monkeypatch):
    from multimodal_dataset.tables import shards

    write_shards(tmp_path / "shards", IDS)
    kwargs = {**WDS, "text": "txt", "text_length": 3, "target": "cls", "seed": 1}
    first, _ = from_webdataset(tmp_path / "shards", **kwargs, cache_dir=tmp_path / "cache")

    def no_reading(*args):
        raise AssertionError("a small member was read from a shard")

    monkeypatch.setattr(shards, "_with_read", no_reading)
    again, _ = from_webdataset(tmp_path / "shards", **kwargs, cache_dir=tmp_path / "cache")
    for a, b in zip(first, again, strict=True):
        assert_same_batches(a, b)


def test_a_shard_tables_member_column_holds_no_string_per_sample_and_pickles_as_files(
    tmp_path, monkeypatch
):
    import pickle

    from multimodal_dataset.io import spilled
    from multimodal_dataset.io.tar_index import MemberNames
    from multimodal_dataset.tables.shards import ShardTable

    monkeypatch.setattr(spilled, "SPILL_MIN_BYTES", 0)  # every per-row array a memory map
    table = ShardTable([str(p) for p in write_shards(tmp_path, IDS)], "the shards", tmp_path)
    members = table.images("png")
    assert isinstance(members.names, MemberNames)
    assert members.names[13] == "sample000013.png"
    assert table.describe_row(13) == f"key 'sample000013' of shard {str(tmp_path / '00001.tar')!r}"
    copy = pickle.loads(pickle.dumps(members))
    assert all(isinstance(a, np.memmap) for a in (copy.shard, copy.offsets, copy.sizes))
    assert copy.get(13) == members.get(13)
    assert len(pickle.dumps(members)) < 2000 + 40 * len(table.shards)


@pytest.mark.keras
def test_nested_json_fields_and_image_alternatives_are_columns(tmp_path):
    write_shards(tmp_path / "a", IDS[:10], shards=1, image="jpg")
    write_shards(tmp_path / "b", IDS[10:20], shards=1, image="png")
    shards = [tmp_path / "a" / "00000.tar", tmp_path / "b" / "00000.tar"]
    train, _ = from_webdataset(
        shards,
        image="png;jpg",
        numeric=["json.half.value"],
        target="cls",
        image_size=(2, 2),
        validation_split=0,
        shuffle=False,
        batch_size=20,
    )
    (_, numbers), targets = train[0]
    np.testing.assert_array_equal(targets, IDS[:20])
    np.testing.assert_allclose(np.argsort(numbers[:, 0]), np.arange(20))
    assert np.abs(ids_of(train[0])[10:] - IDS[10:20]).max() == 0  # PNGs exact (JPEGs lossy)


@pytest.mark.keras
def test_saved_preprocessing_reads_new_shards_as_the_training_samples_were(tmp_path):
    write_shards(tmp_path / "train", IDS)
    write_shards(tmp_path / "new", [7, 3], shards=1)
    train, _ = from_webdataset(tmp_path / "train", **WDS, text="txt", text_length=3, target="cls")
    train.preprocessing.save(tmp_path / "pre.json")
    from multimodal_dataset import TablePreprocessing

    new = TablePreprocessing.load(tmp_path / "pre.json").dataset(tmp_path / "new", batch_size=2)
    np.testing.assert_array_equal(ids_of(new[0]), [7, 3])
    np.testing.assert_array_equal(new[0][1], [7, 3])


# ----------------------------------------------------------------------- bad input


def remove_member(path, member):
    with tarfile.open(path) as archive:
        kept = [(m, archive.extractfile(m).read()) for m in archive if m.name != member]
    with tarfile.open(path, "w") as archive:
        for info, data in kept:
            archive.addfile(info, io.BytesIO(data))


@pytest.mark.keras
def test_a_sample_without_a_requested_member_names_its_key_shard_and_member(tmp_path):
    paths = write_shards(tmp_path, IDS)
    remove_member(paths[1], "sample000012.txt")
    with pytest.raises(
        SampleError,
        match=r"key 'sample000012' of shard '.*00001.tar' has no member 'sample000012.txt'",
    ):
        from_webdataset(tmp_path, **WDS, text="txt", text_length=2)
    train, _ = from_webdataset(
        tmp_path,
        **WDS,
        text="txt",
        text_length=2,
        on_error="replace",
        validation_split=0,
        shuffle=False,
        batch_size=30,
    )
    with pytest.warns(UserWarning, match="1 sample"):
        train.on_epoch_begin()
        train[0]
        train.on_epoch_end()


@pytest.mark.keras
def test_a_sample_without_its_image_is_named_when_its_batch_is_read(tmp_path):
    paths = write_shards(tmp_path, IDS)
    remove_member(paths[2], "sample000025.png")
    train, _ = from_webdataset(tmp_path, **WDS, validation_split=0, shuffle=False, batch_size=30)
    with pytest.raises(
        SampleError,
        match=r"member 'sample000025.png' of shard '.*00002.tar': the sample has no such member",
    ):
        train[0]


@pytest.mark.keras
def test_a_missing_json_field_names_the_member_and_the_field(tmp_path):
    write_shards(tmp_path, IDS)
    with pytest.raises(
        SampleError, match=r"sample000000.json in key 'sample000000' of shard .*no field 'width'"
    ):
        from_webdataset(tmp_path, image="png", numeric=["json.width"], image_size=(2, 2))


def test_a_duplicate_key_names_the_shard_and_the_member(tmp_path):
    (path,) = write_shards(tmp_path, IDS[:3], shards=1)
    with tarfile.open(path, "a") as archive:
        info = tarfile.TarInfo("sample000001.txt")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"dup"))
    with pytest.raises(
        ValueError,
        match=r"00000.tar' holds the key 'sample000001' twice \(member 'sample000001.txt'",
    ):
        from_webdataset(tmp_path, **WDS)


def test_a_truncated_shard_is_named(tmp_path):
    (path,) = write_shards(tmp_path, IDS[:5], shards=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(
        ValueError, match=r"Shard '.*00000.tar' (is truncated|is not a readable tar)"
    ):
        from_webdataset(tmp_path, **WDS)


def test_a_compressed_shard_is_refused_with_the_fix(tmp_path):
    import gzip

    (path,) = write_shards(tmp_path / "plain", IDS[:3], shards=1)
    (tmp_path / "s.tar.gz").write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(ValueError, match=r"is compressed.*Decompress it"):
        from_webdataset(tmp_path / "s.tar.gz", **WDS)


@pytest.mark.keras
def test_a_corrupt_image_member_names_the_shard_and_member(tmp_path):
    write_shards(tmp_path, IDS[:4], shards=1, png=b"not an image")
    train, _ = from_webdataset(tmp_path, **WDS, validation_split=0, batch_size=4)
    with pytest.raises(
        SampleError, match=r"member 'sample00000\d.png' of shard .* is not an image"
    ):
        train[0]


def test_empty_patterns_and_missing_members_list_what_exists(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pattern '.*\*\.tar' matches no file"):
        from_webdataset(str(tmp_path / "*.tar"), **WDS)
    write_shards(tmp_path, IDS[:3], shards=1)
    with pytest.raises(FileNotFoundError, match=r"names 3 files, of which 2 do not exist"):
        from_webdataset(str(tmp_path / "{00000..00002}.tar"), **WDS)
    with pytest.raises(
        KeyError, match=r"no member 'jpg'. Their members are: 'cls', 'json', 'png', 'txt'"
    ):
        from_webdataset(tmp_path, image="jpg", image_size=(2, 2))
    assert len(read_table(tmp_path)) == 3


# ------------------------------------------------------- tar edge cases (#23 items 4, 12)


def test_a_shard_cut_at_a_member_boundary_is_named_as_truncated(tmp_path):
    """An interrupted copy can end exactly between two members: every header before the
    cut reads, so only the missing end-of-archive marker tells the samples are gone."""
    (path,) = write_shards(tmp_path, IDS[:10], shards=1)
    _, offset, size = [m for m in tar_members(path) if m[0].startswith("sample000007")][-1]
    cut = -(-(offset + size) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE  # sample 8's headers
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(ValueError, match=r"00000.tar' is truncated: .*end-of-archive marker"):
        from_webdataset(path, **WDS, cache_dir=tmp_path / "cache")


def link_shard(path, kind):
    """sample0's png and cls, then sample1's png as a link to sample0's, and its cls."""
    with tarfile.open(path, "w") as archive:
        for name, data in (("sample0.png", id_png(7)), ("sample0.cls", b"0")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("sample1.png")
        link.type, link.linkname = kind, "sample0.png"
        archive.addfile(link)
        info = tarfile.TarInfo("sample1.cls")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"1"))


@pytest.mark.keras
def test_a_hard_linked_member_reads_the_data_it_links_to(tmp_path):
    link_shard(tmp_path / "s.tar", tarfile.LNKTYPE)
    train, _ = from_webdataset(
        tmp_path / "s.tar",
        image="png",
        image_size=(2, 2),
        target="cls",
        validation_split=0,
        shuffle=False,
        batch_size=2,
    )
    images, labels = train[0]
    assert sorted(labels.tolist()) == [0, 1]
    assert train.num_samples == 2
    np.testing.assert_array_equal(images[0], images[1])


def test_a_symbolic_link_member_is_refused_by_name(tmp_path):
    link_shard(tmp_path / "s.tar", tarfile.SYMTYPE)
    with pytest.raises(ValueError, match=r"member 'sample1.png' is a symbolic link"):
        from_webdataset(tmp_path / "s.tar", image="png", image_size=(2, 2), validation_split=0)


def test_a_huge_base256_size_in_a_header_names_the_shard_and_the_member(tmp_path):
    (path,) = write_shards(tmp_path, IDS[:2], shards=1)
    data = path.read_bytes()
    end = tar_members(path)[-1]
    data_end = -(-(end[1] + end[2]) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    huge = tarfile.TarInfo("sample000009.txt")
    huge.size = 2**80  # GNU tar writes sizes past 8 GiB in base-256
    header = huge.tobuf(format=tarfile.GNU_FORMAT)
    path.write_bytes(data[:data_end] + header + bytes(2 * tarfile.BLOCKSIZE))
    with pytest.raises(ValueError, match=r"00000.tar' .*member 'sample000009.txt' needs"):
        from_webdataset(path, **WDS, cache_dir=tmp_path / "cache")


# -------------------------------- WebDataset's member conventions, on its own test shards

WDS_TESTDATA = Path(__file__).parents[1] / "data" / "webdataset"


def webdataset_texts(path):
    """What the webdataset library decodes from a shard's text members, by key."""
    import webdataset

    samples = webdataset.WebDataset(str(path), shardshuffle=False).decode()
    return {s["__key__"]: next(v for k, v in s.items() if k.startswith("txt")) for s in samples}


@pytest.mark.parametrize("shard", ["compressed.tar", "testgz-3.tar"])
@pytest.mark.parametrize("column", ["txt", "txt.gz"])
def test_gzipped_members_are_read_decompressed_as_the_webdataset_library_does(shard, column):
    from multimodal_dataset.tables.shards import ShardTable

    table = ShardTable([str(WDS_TESTDATA / shard)], shard)
    table.check_column(column, "text")
    texts = table.column(column, "text")
    expected = webdataset_texts(WDS_TESTDATA / shard)
    keys = [table.key(row) for row in range(len(table))]
    assert dict(zip(keys, texts, strict=True)) == expected
    assert all(text and "\x8b" not in text for text in texts)


def test_a_gzipped_member_that_inflates_past_the_bound_is_refused_by_name(tmp_path):
    import gzip

    with tarfile.open(tmp_path / "s.tar", "w") as archive:
        data = gzip.compress(b"a" * 100_000)
        info = tarfile.TarInfo("sample0.txt.gz")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    from multimodal_dataset.tables.shards import ShardTable

    table = ShardTable([str(tmp_path / "s.tar")], "s", max_member_bytes=10_000)
    with pytest.raises(ValueError, match=r"sample0.txt.gz' of shard .* decompresses to more"):
        table.column("txt", "text")


@pytest.mark.keras
def test_extensions_match_whatever_their_case(tmp_path):
    write_shards(tmp_path / "upper", IDS[:6], shards=1, image="PNG")
    write_shards(tmp_path / "lower", IDS[:6], shards=1, image="png")
    upper, _ = from_webdataset(tmp_path / "upper", **WDS, target="cls", seed=1, batch_size=3)
    lower, _ = from_webdataset(tmp_path / "lower", **WDS, target="cls", seed=1, batch_size=3)
    for a, b in zip(upper, lower, strict=True):
        assert_same_batches(a, b)


@pytest.mark.parametrize(
    ("shard", "member", "kind"),
    [("mpdata-3.tar", "mp", "MessagePack"), ("tendata-2.tar", "ten", "tenbin tensors")],
)
@pytest.mark.parametrize("role", ["numeric", "text"])
def test_member_kinds_the_library_does_not_decode_are_named_as_unsupported(
    shard, member, kind, role
):
    args = {"numeric": [member]} if role == "numeric" else {"text": member, "text_length": 4}
    with pytest.raises(ValueError, match=rf"'{member}' members .* hold {kind}, a member kind"):
        from_webdataset(WDS_TESTDATA / shard, **args, validation_split=0)


# ------------------------------------------------ the header scanner against tarfile


def write_tar(path, tar_format, long_names=False):
    """Samples in ``tar_format`` with a folder, a hard link and (optionally) names past
    the 100 bytes of a ustar name field, non-ASCII ones included."""
    stem = ("ä" * 60 + "/") if long_names else "d/"
    with tarfile.open(path, "w", format=tar_format) as archive:
        folder = tarfile.TarInfo(stem.rstrip("/"))
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for i in range(3):
            for extension, data in (("png", id_png(i)), ("txt", f"caption {i}".encode())):
                info = tarfile.TarInfo(f"{stem}{'k' * (50 if long_names else 1)}{i}.{extension}")
                info.size, info.mtime = len(data), 1.7e9 + 0.25
                archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(f"{stem}link.png")
        link.type, link.linkname = tarfile.LNKTYPE, f"{stem}{'k' * (50 if long_names else 1)}0.png"
        archive.addfile(link)


@pytest.mark.parametrize(
    ("tar_format", "long_names"),
    [
        (tarfile.USTAR_FORMAT, False),
        (tarfile.GNU_FORMAT, False),
        (tarfile.GNU_FORMAT, True),  # GNU long-name entries: left to the tarfile module
        (tarfile.PAX_FORMAT, False),
        (tarfile.PAX_FORMAT, True),  # path records in pax headers
    ],
)
def test_the_header_scanner_indexes_every_format_as_the_tarfile_module(
    tmp_path, monkeypatch, tar_format, long_names
):
    path = tmp_path / "s.tar"
    write_tar(path, tar_format, long_names)
    scanned = shard_index(str(path), tmp_path / "a")

    def unusual(*args):
        raise tar_index._Unusual

    monkeypatch.setattr(tar_index, "_scan", unusual)
    read_by_tarfile = shard_index(str(path), tmp_path / "b")
    assert scanned.samples == read_by_tarfile.samples == 4
    with scanned.columns() as a, read_by_tarfile.columns() as b:
        assert a.table.equals(b.table)


@pytest.mark.parametrize("shard", sorted(p.name for p in WDS_TESTDATA.glob("*.tar")))
def test_the_header_scanner_reads_webdatasets_test_shards_as_the_tarfile_module(shard):
    path = str(WDS_TESTDATA / shard)
    with open(path, "rb") as f:
        size = Path(path).stat().st_size
        scanned = tar_index._scan(tar_index._Blocks(f), path, size)
        assert scanned == tar_index._Indexer(path)._tarfile_entries(f, size)


def test_a_header_with_a_wrong_checksum_is_left_to_the_tarfile_module(tmp_path):
    (path,) = write_shards(tmp_path, IDS[:3], shards=1)
    data = bytearray(path.read_bytes())
    data[tarfile.BLOCKSIZE * 2 + 3] ^= 1  # a name byte of the first member's header
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"00000.tar' is not a readable tar .*bad checksum"):
        shard_index(str(path), tmp_path / "cache")


def test_shards_indexed_in_worker_processes_are_the_indexes_made_here(tmp_path, monkeypatch):
    shards = [str(p) for p in write_shards(tmp_path / "s", IDS)]
    here = tar_index.shard_indexes(shards, tmp_path / "here")
    monkeypatch.setattr(tar_index, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(tar_index.os, "cpu_count", lambda: 2)
    pools, pool = [], tar_index.ProcessPoolExecutor
    monkeypatch.setattr(
        tar_index, "ProcessPoolExecutor", lambda *a, **k: pools.append(a) or pool(*a, **k)
    )
    made = tar_index.shard_indexes(shards, tmp_path / "processes")
    assert pools == [(2,)]
    for a, b in zip(here, made, strict=True):
        with a.columns() as x, b.columns() as y:
            assert x.table.equals(y.table)
