"""The public API: every promised name imports from the package, ``__all__`` is sorted
and complete, and optional dependencies say which extra installs them."""

from __future__ import annotations

import pytest

import multimodal_dataset
from multimodal_dataset._utils import optional

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


@pytest.mark.parametrize(
    "package", ["multimodal_dataset", "multimodal_dataset.sources", "multimodal_dataset.tables"]
)
def test_names_imported_on_first_use_are_the_objects_of_their_modules(package):
    import importlib
    import inspect

    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        home = value.__name__ if inspect.ismodule(value) else value.__module__
        assert home.startswith("multimodal_dataset"), (name, home)
        assert name in dir(module)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nothing'"):
        module.nothing  # noqa: B018


def test_importing_the_package_or_a_source_module_imports_neither_keras_nor_a_backend():
    import subprocess
    import sys

    code = (
        "import sys; import multimodal_dataset, multimodal_dataset.sources.images.files, "
        "multimodal_dataset.tables.shards, multimodal_dataset.engine.gatherer; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'keras', 'jax', 'tensorflow', 'torch', 'pandas'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_optional_dependency_names_its_extra(monkeypatch):
    monkeypatch.setitem(optional.EXTRAS, "not_a_module_xyz", ("tables", "pyarrow"))
    with pytest.raises(
        ImportError, match=r"Reading Parquet needs pyarrow.*multimodal-dataset\[tables\]"
    ):
        optional.optional_import("not_a_module_xyz.sub", "Reading Parquet")
