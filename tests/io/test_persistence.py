"""Versioned JSON for everything saved: the format is checked, newer versions are refused,
and a saved file is read as a bounded regular file."""

from __future__ import annotations

import json
import os

import pytest

from multimodal_dataset import TablePreprocessing, Vocabulary


def test_a_vocabulary_round_trips_with_its_format_and_version(tmp_path):
    vocab = Vocabulary.fit(["a b b c"])
    vocab.save(tmp_path / "v.json")
    data = json.loads((tmp_path / "v.json").read_text())
    assert data["format"] == "multimodal_dataset.Vocabulary" and data["version"] == 1
    assert Vocabulary.load(tmp_path / "v.json") == vocab


@pytest.mark.parametrize("cls", [Vocabulary, TablePreprocessing])
def test_another_format_is_refused_naming_what_was_expected(cls, tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"format": "something.else"}))
    with pytest.raises(ValueError, match=f"Not a saved {cls.__name__}"):
        cls.load(tmp_path / "x.json")


def test_a_newer_version_is_refused_with_the_fix(tmp_path):
    data = dict(Vocabulary.fit(["a"]).to_dict(), version=99)
    with pytest.raises(ValueError, match=r"version 99.*Upgrade multimodal-dataset"):
        Vocabulary.from_dict(data)


def test_a_file_that_is_not_json_is_named(tmp_path):
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(ValueError, match=r"bad\.json' is not a saved Vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")


def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    with pytest.raises(OSError, match="not a regular file"):
        Vocabulary.load(tmp_path / "pipe.json")
