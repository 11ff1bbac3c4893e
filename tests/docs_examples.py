"""The Python examples of the README and of the documentation pages, run as written.

A page's ```python blocks run in order in one namespace (a module of their own, so that a
class defined in one pickles), in a fresh working directory, the way a reader would paste
them into one script. Line numbers in tracebacks are the page's.

``python tests/docs_examples.py PAGE`` runs one page in the current directory (the
distributed tests run their page so, in a process with several JAX devices).
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def pages() -> list[Path]:
    """The README and every page of the site."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def name(page: Path) -> str:
    """The page as the tests name it: its path in the repository."""
    return page.relative_to(ROOT).as_posix()


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """``(line, code)`` of every ```python block of ``page``: the line before its code."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start(1)), m.group(1)) for m in _BLOCK.finditer(text)]


def run_page(page: Path, replacements: Mapping[str, str] | None = None) -> dict:
    """Runs every block of ``page`` in one new module; returns its namespace.

    ``replacements`` maps a regular expression to its replacement, for the values a page
    cannot know (a test server's address); the rest runs as written.
    """
    module = types.ModuleType("docs_example_" + re.sub(r"\W", "_", name(page)))
    module.__file__ = str(page)
    sys.modules[module.__name__] = module
    if "import ray" in page.read_text() or "from ray" in page.read_text():
        # Ray sends functions to its workers by reference when their module is imported:
        # a page's functions go by value, as a script's (its __main__) would.
        import ray.cloudpickle

        ray.cloudpickle.register_pickle_by_value(module)
    try:
        for line, code in python_blocks(page):
            for pattern, value in (replacements or {}).items():
                code = re.sub(pattern, lambda _, value=value: value, code, flags=re.M)
            exec(compile("\n" * line + code, str(page), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module.__dict__


if __name__ == "__main__":
    run_page(Path(sys.argv[1]).resolve())
