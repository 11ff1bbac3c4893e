"""Worker processes the library starts on its own (tokenizing many texts, filling a
decoded cache): spawned, so they are safe beside any backend's threads, and without
running the user's ``__main__`` again.

A spawned child normally re-imports the script that started it, as ``__mp_main__``: a
script without an ``if __name__ == "__main__":`` guard would build its dataset again in
every child, which may not start processes while it starts, so the pool breaks. The
functions these pools run live in this package, so the children need nothing of the
script: `spawn_context` leaves it out of what they are told to import.
"""

from __future__ import annotations

import threading
from multiprocessing import context, popen_spawn_posix, spawn
from typing import Any

_lock = threading.Lock()


class _Popen(popen_spawn_posix.Popen):
    def _launch(self, process_obj: Any) -> None:
        original = spawn.get_preparation_data

        def without_main(name: str) -> dict[str, Any]:
            data: dict[str, Any] = original(name)
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
            return data

        with _lock:
            spawn.get_preparation_data = without_main
            try:
                super()._launch(process_obj)  # type: ignore[misc]
            finally:
                spawn.get_preparation_data = original


class _Process(context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _Popen(process_obj)


class _Context(context.SpawnContext):
    Process = _Process


def spawn_context() -> context.SpawnContext:
    """A spawn context whose children do not import the ``__main__`` module."""
    return _Context()
