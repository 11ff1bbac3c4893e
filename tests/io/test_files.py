"""Files from elsewhere: only regular files, never past a bound, never outside a root."""

from __future__ import annotations

import os

import pytest

from multimodal_dataset.io.files import (
    FileTooLargeError,
    NotARegularFileError,
    is_inside,
    read_regular_file,
)


def test_a_regular_file_is_read_whole_within_its_bound(tmp_path):
    (tmp_path / "f").write_bytes(b"12345")
    assert read_regular_file(str(tmp_path / "f"), 5) == b"12345"
    with pytest.raises(FileTooLargeError, match="has 5 bytes, more than max_file_bytes=4"):
        read_regular_file(str(tmp_path / "f"), 4)


@pytest.mark.parametrize(("grown", "bound"), [(b"1234567", 10), (b"1234567890AB", 10)])
def test_a_file_that_grows_after_its_size_was_taken_is_read_whole_or_refused_past_the_bound(
    tmp_path, monkeypatch, grown, bound
):
    # The size is taken first and only that much asked for (no buffer of the bound's size):
    # a file longer than its size said is still read whole, or refused past the bound.
    path = tmp_path / "f"
    path.write_bytes(grown)
    real_fstat = os.fstat

    class Stale:  # what fstat said before the file grew: 3 bytes
        def __init__(self, fd):
            self.st_mode, self.st_size = real_fstat(fd).st_mode, 3

    monkeypatch.setattr("multimodal_dataset.io.files.os.fstat", Stale)
    if len(grown) <= bound:
        assert read_regular_file(str(path), bound) == grown
    else:
        with pytest.raises(FileTooLargeError, match="grew past max_file_bytes=10"):
            read_regular_file(str(path), bound)


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_anything_but_a_regular_file_is_refused_without_blocking(tmp_path, kind):
    path = str(tmp_path / "x")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        os.mkdir(path)
    else:
        path = "/dev/zero"
    with pytest.raises((NotARegularFileError, IsADirectoryError)):
        read_regular_file(path, 10)


@pytest.mark.parametrize(
    ("given", "inside"),
    [
        ("a.png", True),
        ("sub/a.png", True),
        ("sub/../a.png", True),
        ("../a.png", False),
        ("/etc/passwd", False),
        ("/root/data/a.png", True),
    ],
)
def test_paths_stay_inside_the_root_lexically(given, inside):
    root = "/root/data"
    assert is_inside(given, os.path.join(root, given), root) is inside
