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

import numpy as np

from multimodal_dataset.batching.sampler import BatchPlan
from multimodal_dataset.batching.structure import Field
from multimodal_dataset.diagnostics.served import ServedOnce, real_samples
from multimodal_dataset.sources.text.tokens import TruncatedTextWarning

#: How many sample indices a report names before "and N more".
_SHOWN = 5


class TruncationLog:
    """Counts, per bucketed input, the truncated texts each epoch served (the text source
    reports them in its gather context; see `GatherContext.truncated`).

    Bounded whatever the number of samples or of truncated ones: per input a count and the
    smallest few sample indices, and per batch position the report it was counted for
    (`ServedOnce`), so a batch read again before the report (Keras reads some twice)
    counts once. Recording a batch is O(batch); a report is O(1).
    """

    def __init__(self, fields: Sequence[Field]) -> None:
        # The length a field's texts are cut to: its largest bucket (its last dimension).
        self._largest = {f.name: f.array.shape[-1] for f in fields if len(f.array.shape) > 1}
        self._count = dict.fromkeys(self._largest, 0)
        self._smallest = {name: np.empty(0, np.int64) for name in self._largest}
        self._served = ServedOnce()

    def record(self, plan: BatchPlan, truncated: Iterable[tuple[str, Sequence[int]]]) -> None:
        """Notes the truncated texts of the batch ``plan`` describes, ``(field, samples)``
        per input; the same batch read again before the report counts once, and so does a
        sample that pads a last batch (``pad_remainder``: it is counted where it is real)."""
        if not self._served.first(plan):
            return
        for name, listed in truncated:
            samples = real_samples(plan, np.asarray(listed, np.int64))
            self._count[name] += samples.size
            both = np.concatenate([self._smallest[name], samples])
            self._smallest[name] = np.sort(both)[:_SHOWN]

    def report(self, epoch: int) -> None:
        """Warns once per input for the truncated texts recorded since the last report."""
        self._served.next_generation()
        for name, largest in self._largest.items():
            count, smallest = self._count[name], self._smallest[name]
            self._count[name], self._smallest[name] = 0, np.empty(0, np.int64)
            if not count:
                continue
            shown = ", ".join(str(s) for s in smallest.tolist())
            more = f" and {count - len(smallest)} more" if count > len(smallest) else ""
            plural = count > 1
            warnings.warn(
                f"MultimodalDataset epoch {epoch}: {count} text"
                f"{'s' if plural else ''} of {name} {'were' if plural else 'was'} longer "
                f"than its largest bucket ({largest} tokens) and truncated to it (sample"
                f"{'s' if plural else ''} {shown}{more}). Add a larger bucket to "
                "TextTokens(buckets=...) to keep them whole; TextTokens.truncated lists "
                "every one.",
                TruncatedTextWarning,
                stacklevel=3,
            )
