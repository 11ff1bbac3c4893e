"""Optional dependencies, imported only when a feature needs them, with the install hint.

The core (numpy and Keras) imports fast and installs small; each format brings its own
extra (``pip install "multimodal-dataset[images]"``).
"""

from __future__ import annotations

import importlib
from typing import Any

#: The extra that installs each optional module (its top-level package).
EXTRAS = {
    "PIL": ("images", "pillow"),
    "simplejpeg": ("images", "simplejpeg"),
    "pyarrow": ("tables", "pyarrow"),
    "tokenizers": ("tokenizers", "tokenizers"),
    "fsspec": ("remote", "fsspec"),
    "aiohttp": ("remote", "aiohttp"),
    "s3fs": ("s3", "s3fs"),
    "gcsfs": ("gcs", "gcsfs"),
    "matplotlib": ("plot", "matplotlib"),
    "ray": ("ray", "ray"),
}


def optional_import(module: str, purpose: str) -> Any:
    """Imports ``module``, or raises an ImportError saying which extra installs it.

    Args:
        module: The module to import, e.g. ``"pyarrow.parquet"``.
        purpose: What needs it, for the message: ``"Reading Parquet"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        extra, package = EXTRAS.get(top, (None, top))
        how = (
            f"`pip install 'multimodal-dataset[{extra}]'` (or `pip install {package}`)"
            if extra
            else f"`pip install {package}`"
        )
        raise ImportError(
            f"{purpose} needs {package}, which is not installed. Install it with {how}."
        ) from None


def try_import(module: str) -> Any:
    """``module``, or None when it is not installed (for optional accelerations)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
