"""What went wrong with an image, in words: every failure to read or decode one (missing,
not a regular file, too large, outside the root, not an image, truncated) as the message
a `SampleError` gives."""

from __future__ import annotations

from multimodal_dataset.io.files import (
    FileTooLargeError,
    MissingDataError,
    NotARegularFileError,
    OutsideRootError,
)
from multimodal_dataset.io.storage_errors import StorageError


def explain(error: Exception, what: str) -> str:
    """What went wrong reading or decoding an image (``what`` names it, e.g. ``image file
    'a.jpg'``), for a `SampleError`."""
    if isinstance(error, StorageError):
        return f"{what}: {error}"
    if isinstance(error, FileNotFoundError):
        return f"{what} does not exist"
    if isinstance(error, IsADirectoryError):
        return f"{what} is a directory, not a file"
    if isinstance(error, OutsideRootError):
        return str(error)
    if isinstance(error, (NotARegularFileError, FileTooLargeError)):
        return f"image file {error}"
    if isinstance(error, PermissionError):
        return f"{what} cannot be read (permission denied)"
    if isinstance(error, MissingDataError):
        return f"{what}: {error}"
    if type(error).__name__ == "UnidentifiedImageError":
        return f"{what} is not an image Pillow can read (corrupt, or not an image)"
    if isinstance(error, OSError) and "truncated" in str(error):
        return f"{what} is truncated ({error})"
    return f"{what} could not be decoded ({type(error).__name__}: {error})"
