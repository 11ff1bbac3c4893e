"""Shows that the site's build fails on what it must refuse: ``python -m tools.docs_defects``.

Copies the site's sources (``mkdocs.yml``, ``docs/``, ``tools/``, ``src/``, the reports)
into a temporary folder once per defect, plants the defect, and expects
``mkdocs build --strict`` to fail with a message that names it:

- a link to a page that does not exist;
- a link to a heading that does not exist;
- a cross-reference to a name that does not exist;
- a public name left out of the reference;
- a public name without a docstring.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ["mkdocs.yml", "docs", "tools", "src", "benchmarks/results", "portability"]


def _append(path: str, text: str) -> Callable[[Path], None]:
    def plant(root: Path) -> None:
        with open(root / path, "a") as f:
            f.write(text)

    return plant


def _replace(path: str, old: str, new: str) -> Callable[[Path], None]:
    def plant(root: Path) -> None:
        text = (root / path).read_text()
        assert old in text, f"{path} no longer holds {old!r}: update tools/docs_defects.py"
        (root / path).write_text(text.replace(old, new, 1))

    return plant


#: Each defect, how it is planted, and a word the failing build's output must contain.
DEFECTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "a broken link": (
        _append("docs/index.md", "\n[gone](guides/no-such-page.md)\n"),
        "no-such-page.md",
    ),
    "a broken anchor": (
        _append("docs/index.md", "\n[gone](guides/cache.md#no-such-heading)\n"),
        "no-such-heading",
    ),
    "a missing reference": (
        _append("docs/index.md", "\n[gone][multimodal_dataset.NoSuchName]\n"),
        "multimodal_dataset.NoSuchName",
    ),
    "a public name left out of the reference": (
        _replace("docs/reference/errors.md", "::: multimodal_dataset.CacheWarning\n", ""),
        "docs/reference/): CacheWarning",
    ),
    "a public name without a docstring": (
        _replace(
            "src/multimodal_dataset/sources/protocol.py",
            '"""Samples were replaced (``on_error="replace"``) during an epoch."""',
            "pass",
        ),
        "no docstring (add one): multimodal_dataset.ReplacedSamplesWarning",
    ),
}


def build(root: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", "site"]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)


def refuses(defect: str) -> str | None:
    """Builds a copy with ``defect`` planted; what went wrong if the build did not refuse
    it, naming it (None: it did)."""
    plant, named = DEFECTS[defect]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for path in COPIED:
            source, target = ROOT / path, root / path
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        plant(root)
        done = build(root)
    output = done.stdout + done.stderr
    if done.returncode == 0 or named not in output:
        return f"{defect}: the build did not fail naming {named!r}:\n{output[-2000:]}"
    return None


def main() -> int:
    # The builds are processes of their own: one per core at once.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = dict(zip(DEFECTS, pool.map(refuses, DEFECTS), strict=True))
    for defect, failure in results.items():
        print(failure or f"{defect}: refused, naming {DEFECTS[defect][1]!r}")
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
