"""`TruncationLog`: texts longer than their input's largest bucket, reported at the end of
every epoch that served them with a `TruncatedTextWarning`, so a truncation is never
silent (``TextTokens`` also warns once, when it is built).

As with replacements, the batches Keras reads of epoch 0 before training starts are not an
epoch of their own: what they truncated is reported with the first training epoch, each
sample once.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from multimodal_dataset.sources.text import TruncatedTextWarning
from multimodal_dataset.structure import Field

#: How many sample indices a report names before "and N more".
_SHOWN = 5


class TruncationLog:
    """Counts, per bucketed input, the truncated texts each epoch served."""

    def __init__(self, fields: Sequence[Field]) -> None:
        self._inputs: list[tuple[str, np.ndarray, int]] = []
        for field in fields:
            truncated = getattr(field.array, "truncated", None)
            if field.buckets is not None and truncated is not None and len(truncated):
                self._inputs.append((field.name, np.sort(truncated), field.buckets[-1]))
        self._pending: dict[str, set[int]] = {name: set() for name, _, _ in self._inputs}

    def record(self, indices: np.ndarray) -> None:
        """Notes which of a batch's samples have truncated texts (a sample read again
        before the report counts once)."""
        for name, truncated, _ in self._inputs:
            hits = indices[np.isin(indices, truncated)]
            if len(hits):
                self._pending[name].update(hits.tolist())

    def report(self, epoch: int) -> None:
        """Warns once per input for the truncated texts recorded since the last report."""
        for name, _, largest in self._inputs:
            samples = sorted(self._pending[name])
            self._pending[name] = set()
            if not samples:
                continue
            shown = ", ".join(str(s) for s in samples[:_SHOWN])
            more = f" and {len(samples) - _SHOWN} more" if len(samples) > _SHOWN else ""
            plural = len(samples) > 1
            warnings.warn(
                f"MultimodalDataset epoch {epoch}: {len(samples)} text"
                f"{'s' if plural else ''} of {name} {'were' if plural else 'was'} longer "
                f"than its largest bucket ({largest} tokens) and truncated to it (sample"
                f"{'s' if plural else ''} {shown}{more}). Add a larger bucket to "
                "TextTokens(buckets=...) to keep them whole; TextTokens.truncated lists "
                "every one.",
                TruncatedTextWarning,
                stacklevel=3,
            )
