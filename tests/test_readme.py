"""The README's ten-line example runs as written on the active backend."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_trains_far_above_chance():
    example = re.search(r"## Ten lines\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert example is not None, "README.md lost its '## Ten lines' example"
    code = example.group(1).replace("epochs=5)", "epochs=5, verbose=0)")
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    history = namespace["model"].history.history
    assert history["val_accuracy"][-1] > 0.8
