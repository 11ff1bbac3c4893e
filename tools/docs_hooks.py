"""MkDocs hooks of the documentation site (``mkdocs.yml``: ``hooks``).

- Every name of ``multimodal_dataset.__all__`` must be in the reference (a ``:::``
  directive on a page under ``docs/reference/``) and have a docstring, as must the public
  functions, methods and properties of those classes and modules: the build fails
  otherwise, naming them.
- The committed charts (``benchmarks/results/latest.png``, ``portability/loss_curves.png``)
  are published under ``assets/`` from where the reports' runs write them, so the pages
  show the committed pictures without a copy in ``docs/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "multimodal_dataset"

#: Published path -> the committed file it is.
ASSETS = {
    "assets/benchmarks.png": ROOT / "benchmarks" / "results" / "latest.png",
    "assets/portability_loss_curves.png": ROOT / "portability" / "loss_curves.png",
}

_DIRECTIVE = re.compile(rf"^:::\s*{PACKAGE}\.(\w+)\s*$", re.M)


def load_package() -> Any:
    """The package as griffe reads it from the source (nothing is imported)."""
    return griffe.load(PACKAGE, search_paths=[str(ROOT / "src")], resolve_aliases=True)


def public_names(package: Any) -> list[str]:
    """``multimodal_dataset.__all__``."""
    exports = package.exports
    if not exports:
        raise PluginError(f"{PACKAGE}/__init__.py has no __all__ that griffe can read.")
    return [str(name) for name in exports]


def undocumented(name: str, package: Any) -> list[str]:
    """The public name ``name`` and its own public members that have no docstring."""
    target = package[name]
    target = target.final_target if target.is_alias else target
    missing = [] if _has_docstring(target) else [f"{PACKAGE}.{name}"]
    if target.is_class or target.is_module:
        for member_name, member in target.all_members.items():
            if member_name.startswith("_") or member.is_alias:
                continue
            if (member.is_function or member.is_class or "property" in member.labels) and (
                not _has_docstring(member)
            ):
                missing.append(f"{PACKAGE}.{name}.{member_name}")
    return missing


def _has_docstring(obj: Any) -> bool:
    return obj.docstring is not None and bool(obj.docstring.value.strip())


def referenced_names(docs_dir: Path) -> set[str]:
    """The names documented by a ``::: multimodal_dataset.NAME`` directive."""
    names: set[str] = set()
    for page in (docs_dir / "reference").rglob("*.md"):
        names.update(_DIRECTIVE.findall(page.read_text()))
    return names


def on_pre_build(config: Any) -> None:
    package = load_package()
    names = public_names(package)
    problems = []
    absent = sorted(set(names) - referenced_names(Path(config["docs_dir"])))
    if absent:
        problems.append(
            "not in the reference (add '::: multimodal_dataset.NAME' to a page under "
            f"docs/reference/): {', '.join(absent)}"
        )
    missing = [m for name in names for m in undocumented(name, package)]
    if missing:
        problems.append(f"no docstring (add one): {', '.join(missing)}")
    if problems:
        raise PluginError("The API reference is incomplete: " + "; ".join(problems) + ".")


def on_files(files: Files, config: Any) -> Files:
    for published, source in ASSETS.items():
        if not source.is_file():
            raise PluginError(f"{source.relative_to(ROOT)} is missing: the docs show it.")
        files.append(File.generated(config, published, abs_src_path=str(source)))
    return files
