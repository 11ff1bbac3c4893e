"""One versioned JSON format for everything the library saves (vocabularies, table
preprocessing): ``{"format": ..., "version": ..., ...fields}``.

A saved file is data from elsewhere: it is read as a bounded regular file, and a file of
another format, or of a newer version than this library reads, is refused with a message
saying what it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from multimodal_dataset.io.files import read_regular_file
from multimodal_dataset.io.storage import Storage
from multimodal_dataset.io.urls import is_remote, local_path

#: The largest saved file read (a vocabulary of a million tokens is about 20 MB).
MAX_SAVED_BYTES = 256 * 2**20

T = TypeVar("T", bound="Saveable")


class Saveable:
    """``to_dict``/``from_dict`` and ``save``/``load`` as versioned JSON.

    Subclasses set `FORMAT` (and `VERSION` when the fields change) and implement
    `_fields` (what to save) and `_from_fields` (how to rebuild from it).
    """

    FORMAT: ClassVar[str]
    VERSION: ClassVar[int] = 1
    #: Keys a saved dict must have besides format and version.
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    INDENT: ClassVar[int | None] = None

    def _fields(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_fields(cls: type[T], data: Mapping[str, Any]) -> T:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The object as a JSON-ready dict, with its format and version."""
        return {"format": self.FORMAT, "version": self.VERSION, **self._fields()}

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """Rebuilds the object from `to_dict`'s dict.

        Raises:
            ValueError: For a dict of another format, or of a newer version.
        """
        name = cls.__name__
        if (
            not isinstance(data, Mapping)
            or data.get("format") != cls.FORMAT
            or any(key not in data for key in cls.REQUIRED)
        ):
            keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(
                f"Not a saved {name} (expected format {cls.FORMAT!r}); got keys {keys!r}. "
                f"Save one with {name}.save(path)."
            )
        version = data.get("version", 1)
        if not isinstance(version, int) or version > cls.VERSION:
            raise ValueError(
                f"This {name} was saved in version {version!r} of its format, but this "
                f"library reads versions up to {cls.VERSION}. Upgrade multimodal-dataset."
            )
        return cls._from_fields(data)

    def save(
        self, path: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
    ) -> None:
        """Writes the object as JSON (UTF-8) to a file or a URL (``s3://bucket/p.json``,
        written with ``storage_options``; see ``storage``)."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=self.INDENT)
        where = local_path(os.fspath(path))
        if is_remote(where):
            Storage(storage_options).write(where, text.encode("utf-8"))
            return
        with open(where, "w", encoding="utf-8") as f:
            f.write(text)

    @classmethod
    def load(
        cls: type[T], path: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
    ) -> T:
        """Reads an object written by `save`, from a file or a URL."""
        where = local_path(os.fspath(path))
        if is_remote(where):
            data = Storage(storage_options).read(where, MAX_SAVED_BYTES)
        else:
            data = read_regular_file(where, MAX_SAVED_BYTES)
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{os.fspath(path)!r} is not a saved {cls.__name__} (not UTF-8 JSON: {error})."
            ) from None
        return cls.from_dict(parsed)
