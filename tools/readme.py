"""Refreshes the README's generated sections from the committed results.

``python -m tools.readme`` (``nox -s docs``) replaces the text between each section's
markers with the committed report: the benchmark table (``benchmarks/results/latest.md``)
and the portability report (``portability/report.md``), each with its chart. Nothing
else writes to the README: a benchmark run leaves it alone until you choose to refresh it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Section:
    """A generated README section: its markers, the report it shows and its chart."""

    start: str
    end: str
    report: str
    chart: str
    caption: str


SECTIONS = (
    Section(
        "<!-- benchmark results: written by `nox -s docs` from `nox -s bench` -->",
        "<!-- end of benchmark results -->",
        "benchmarks/results/latest.md",
        "benchmarks/results/latest.png",
        "Benchmark chart",
    ),
    Section(
        "<!-- portability report: written by `nox -s docs` from `nox -s portability` -->",
        "<!-- end of portability report -->",
        "portability/report.md",
        "portability/loss_curves.png",
        "Loss per epoch",
    ),
)


def refresh(readme: Path = ROOT / "README.md") -> list[str]:
    """Rewrites every section of ``readme``; returns the problems (missing markers)."""
    text = readme.read_text()
    problems = []
    for section in SECTIONS:
        report = (ROOT / section.report).read_text().strip()
        block = f"{section.start}\n{report}\n\n![{section.caption}]({section.chart})\n{section.end}"
        pattern = re.escape(section.start) + ".*?" + re.escape(section.end)
        if not re.search(pattern, text, re.S):
            problems.append(f"README.md has no markers {section.start!r} ... {section.end!r}")
            continue
        text = re.sub(pattern, lambda _, block=block: block, text, flags=re.S)
    readme.write_text(text)
    return problems


def main() -> int:
    problems = refresh()
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
