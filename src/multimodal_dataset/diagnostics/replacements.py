"""`ReplacementLog`: the samples that sources replaced (``on_error="replace"``), reported
once per epoch with a `ReplacedSamplesWarning`, nothing dropped silently.

The batches Keras reads of epoch 0 before training starts (to build the model, and on
TensorFlow to infer the output signature) are not an epoch of their own: what they replaced
is carried into the first training epoch's report, each sample once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from multimodal_dataset.sources.protocol import ReplacedSamplesWarning, Replacement


class ReplacementLog:
    """Collects replacements and reports them at the end of each epoch."""

    def __init__(self) -> None:
        self._reported: list[Replacement] = []
        self._pending: dict[tuple[str, int], Replacement] = {}  # not reported yet

    def record(self, replaced: Iterable[Replacement]) -> None:
        """Adds a batch's replacements; a sample read again before the report counts once."""
        for r in replaced:
            self._pending[(r.field, r.sample)] = r

    def report(self, epoch: int) -> None:
        """Warns once for everything recorded since the last report."""
        new = list(self._pending.values())
        self._pending = {}
        self._reported += new
        if not new:
            return
        shown = "; ".join(f"{r.field} {r.reason}" for r in new[:5])
        more = f"; and {len(new) - 5} more" if len(new) > 5 else ""
        warnings.warn(
            f"MultimodalDataset epoch {epoch}: {len(new)} sample"
            f"{'s were' if len(new) > 1 else ' was'} replaced because "
            f"{'they' if len(new) > 1 else 'it'} could not be read (on_error='replace'): "
            f"{shown}{more}. Every replacement is listed in ds.replacements.",
            ReplacedSamplesWarning,
            stacklevel=3,
        )

    @property
    def all(self) -> list[Replacement]:
        """Every replacement so far, reported or not, once per epoch."""
        return self._reported + list(self._pending.values())
