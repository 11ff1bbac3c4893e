"""`Picklable`: objects that cross into worker processes without their locks, pools and
caches, which are made anew on the other side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar


class Picklable:
    """Pickles without the attributes in `TRANSIENT` and recreates them after unpickling.

    Subclasses set ``TRANSIENT = {"_lock": threading.Lock, "_pool": lambda: None}``: the
    attribute name and a factory of its fresh value.
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in self.TRANSIENT:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name, fresh in self.TRANSIENT.items():
            setattr(self, name, fresh())
