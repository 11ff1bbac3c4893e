"""`TruncationLog`: texts longer than their input's largest bucket, reported at the end of
every epoch that served them with a `TruncatedTextWarning`, so a truncation is never
silent (``TextTokens`` also warns once, when it is built).

As with replacements, the batches Keras reads of epoch 0 before training starts are not an
epoch of their own: what they truncated is reported with the first training epoch, each
sample once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

from multimodal_dataset.batching.structure import Field
from multimodal_dataset.sources.text.tokens import TruncatedTextWarning

#: How many sample indices a report names before "and N more".
_SHOWN = 5


class TruncationLog:
    """Counts, per bucketed input, the truncated texts each epoch served (the text source
    reports them in its gather context; see `GatherContext.truncated`)."""

    def __init__(self, fields: Sequence[Field]) -> None:
        # The length a field's texts are cut to: its largest bucket (its last dimension).
        self._largest = {f.name: f.array.shape[-1] for f in fields if len(f.array.shape) > 1}
        self._pending: dict[str, set[int]] = {name: set() for name in self._largest}

    def record(self, truncated: Iterable[tuple[str, Sequence[int]]]) -> None:
        """Notes a batch's truncated texts, ``(field, samples)`` per input (a sample read
        again before the report counts once)."""
        for name, samples in truncated:
            self._pending[name].update(samples)

    def report(self, epoch: int) -> None:
        """Warns once per input for the truncated texts recorded since the last report."""
        for name, largest in self._largest.items():
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
