"""The cache folder: where it is, and derived files named by their source's identity,
written whole or not at all."""

from __future__ import annotations

import os

import pytest

from multimodal_dataset.io.cache_folder import cache_folder, cached_file, write_atomically


def test_the_cache_folder_follows_the_argument_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIMODAL_DATASET_CACHE", str(tmp_path / "env"))
    assert cache_folder() == tmp_path / "env" / "arrow"
    assert cache_folder(tmp_path / "given") == tmp_path / "given" / "arrow"
    monkeypatch.delenv("MULTIMODAL_DATASET_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == tmp_path / "xdg" / "multimodal_dataset" / "arrow"


def test_a_cached_file_changes_name_when_its_source_changes(tmp_path):
    source = tmp_path / "t.parquet"
    source.write_bytes(b"one")

    def cached():
        return cached_file(str(source), "arrow", "t.image.arrow", "image", cache_dir=tmp_path)

    first, reusable = cached()
    assert first.parent == tmp_path / "arrow" and first.name.startswith("t.image.")
    assert reusable and cached() == (first, True)
    source.write_bytes(b"three")
    assert cached()[0] != first


def test_a_failed_write_leaves_neither_the_target_nor_a_temporary_file(tmp_path):
    def fail(temporary):
        with open(temporary, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(tmp_path / "kind" / "x.json", fail)
    assert os.listdir(tmp_path / "kind") == []
