"""The public API: every promised name imports from the package, ``__all__`` is sorted
and complete, and optional dependencies say which extra installs them."""

from __future__ import annotations

import pytest

import multimodal_dataset
from multimodal_dataset import optional

PROMISED = [
    "MultimodalDataset",
    "ImageBytes",
    "ImageFiles",
    "from_webdataset",
    "TextTokens",
    "NumericColumns",
    "from_table",
    "TablePreprocessing",
    "ImageAugmentation",
    "make_example",
    "models",
    "synthetic",
    "SampleError",
    "Source",
    "Vocabulary",
    "Standardizer",
    "testing",
]


def test_every_promised_name_is_exported():
    for name in PROMISED:
        assert name in multimodal_dataset.__all__ and hasattr(multimodal_dataset, name)


def test_all_is_sorted_and_every_name_exists():
    assert sorted(multimodal_dataset.__all__) == multimodal_dataset.__all__
    assert all(hasattr(multimodal_dataset, n) for n in multimodal_dataset.__all__)


def test_a_missing_optional_dependency_names_its_extra(monkeypatch):
    monkeypatch.setitem(optional.EXTRAS, "not_a_module_xyz", ("tables", "pyarrow"))
    with pytest.raises(
        ImportError, match=r"Reading Parquet needs pyarrow.*multimodal-dataset\[tables\]"
    ):
        optional.optional_import("not_a_module_xyz.sub", "Reading Parquet")
