"""Where an epoch's time goes: producing batches (per field) and, through `InputMonitor`,
how long the training loop waited for them.

The dataset always measures, per epoch, the wall time its ``__getitem__`` took and each
field's share of it (an image source's decoding, a text source's token ids, a plain
array's indexing; with several workers a field's seconds are summed over them). These
are ``ds.stats``. `InputMonitor` (``ds.monitor()``) adds what only the training loop
knows: the epoch's training time and how much of it the loop waited for data.

How the waiting is measured depends on the thread that reads the dataset:

- In the training loop's own thread (JAX and PyTorch: Keras calls ``ds[i]`` between
  steps), every second spent producing a batch is a second the loop waits.
- In another thread (TensorFlow: a ``tf.data`` thread reads ahead, with a prefetch
  buffer), a batch is waited for only if it was not ready when the step that consumes
  it began: the wait is the time from the step's start to the batch's completion.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    from multimodal_dataset.batching.structure import Field

#: Above this share of the training time spent waiting for data, an epoch is input-bound.
INPUT_BOUND = 0.2


@dataclasses.dataclass
class _Epoch:
    """What one epoch's batches took to produce, as the batches are read."""

    batches: int = 0
    samples: int = 0
    produce_s: float = 0.0
    fields_s: list[float] = dataclasses.field(default_factory=list)
    #: ``(thread, position in the epoch, requested, served)`` of each batch read inside
    #: the epoch (the time between is what the reading thread waited).
    timeline: list[tuple[int, int, float, float]] = dataclasses.field(default_factory=list)


class StatsLog:
    """Per-epoch production statistics of one dataset (see the module docstring).

    Args:
        fields: The dataset's fields, in batch order.
    """

    def __init__(self, fields: Sequence[Field]) -> None:
        self.fields = tuple(fields)
        self.records: list[dict[str, Any]] = []
        self.timeline: list[tuple[int, int, float, float]] = []  # the last epoch's
        self._current = _Epoch(fields_s=[0.0] * len(self.fields))
        self._mark: tuple[int, int, float, list[float], int]
        self.mark()

    def record(
        self,
        start: float,
        samples: int,
        fields_s: Sequence[float],
        position: int | None,
        produce_s: float,
    ) -> None:
        """Records one batch requested at ``start`` (a `time.perf_counter` value) and
        served now, which took ``produce_s`` to produce (maybe ahead, in another thread);
        ``position`` is its place in the epoch Keras runs (None outside one)."""
        end = time.perf_counter()
        current = self._current
        current.batches += 1
        current.samples += samples
        current.produce_s += produce_s
        current.fields_s = [a + b for a, b in zip(current.fields_s, fields_s, strict=True)]
        if position is not None:
            current.timeline.append((threading.get_ident(), position, start, end))

    def mark(self) -> None:
        """Remembers where the current epoch's record stands (a Keras epoch ended)."""
        current = self._current
        self._mark = (
            current.batches,
            current.samples,
            current.produce_s,
            list(current.fields_s),
            len(current.timeline),
        )

    def rewind(self) -> None:
        """Forgets what was recorded since `mark`: the batches Keras read before
        training (to build the model, to infer a signature), which are no epoch."""
        current = self._current
        batches, samples, produce_s, fields_s, timeline = self._mark
        current.batches, current.samples, current.produce_s = batches, samples, produce_s
        current.fields_s = fields_s
        del current.timeline[timeline:]

    def finish(self, epoch: int) -> None:
        """Closes ``epoch``'s record (an epoch was read whole)."""
        current, self._current = self._current, _Epoch(fields_s=[0.0] * len(self.fields))
        self.mark()  # an empty epoch
        if not current.batches:
            return
        self.timeline = current.timeline
        self.records.append(
            {
                "epoch": epoch,
                "batches": current.batches,
                "samples": current.samples,
                "produce_s": current.produce_s,
                "fields_s": {f.name: s for f, s in zip(self.fields, current.fields_s, strict=True)},
            }
        )

    def slowest_field(self, record: dict[str, Any]) -> tuple[Field, float] | None:
        """The field that took the most of ``record``'s production time, and its share."""
        seconds = [record["fields_s"][f.name] for f in self.fields]
        total = sum(seconds)
        if not total:
            return None
        best = max(range(len(seconds)), key=seconds.__getitem__)
        return self.fields[best], seconds[best] / total


class InputMonitor(keras.callbacks.Callback):  # type: ignore[misc]
    """Measures how long each training epoch waited for a dataset's batches; see
    `MultimodalDataset.monitor`.

    Args:
        log: The dataset's `StatsLog` (what it recorded of every batch it served).
        name: The dataset's name, for the printed line.
        workers: How many workers the dataset gathers with (a hint suggests more).
        verbose: Whether to print one line per epoch.
    """

    def __init__(self, log: StatsLog, name: str, workers: int, *, verbose: bool = True) -> None:
        super().__init__()
        self._log = log
        self._name = name
        self._workers = workers
        self.verbose = verbose
        self._cpus = min(8, os.cpu_count() or 1)
        self._thread = 0
        self._epoch_start = 0.0
        self._begins: list[float] = []
        self._last_end = 0.0
        self._seen = len(log.records)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._thread = threading.get_ident()
        self._epoch_start = self._last_end = time.perf_counter()
        self._begins = []

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._begins.append(time.perf_counter())

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._last_end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        log = self._log
        if len(log.records) <= self._seen or not self._begins:
            return  # the dataset served no epoch (steps_per_epoch cut it short)
        self._seen = len(log.records)
        record = log.records[-1]
        train_s = max(self._last_end - self._epoch_start, 1e-9)
        wait_s = min(self._waited(log.timeline), train_s)
        record.update(
            steps=len(self._begins),
            train_s=train_s,
            wait_s=wait_s,
            wait_fraction=wait_s / train_s,
            input_bound=wait_s / train_s >= INPUT_BOUND,
            read_in_training_thread=all(t == self._thread for t, *_ in log.timeline),
        )
        record["summary"] = summarize(record, log, self._workers, self._cpus)
        if self.verbose:
            print(f"{self._name}: {record['summary']}", file=sys.stdout)

    def _waited(self, timeline: Sequence[tuple[int, int, float, float]]) -> float:
        """Seconds the training loop waited for batches (see the module docstring)."""
        per_step = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        waited = 0.0
        for thread, position, start, end in timeline:
            if thread == self._thread:
                waited += end - start
                continue
            step = position // per_step
            if step < len(self._begins):
                waited += max(0.0, end - max(start, self._begins[step]))
        return waited


def summarize(record: dict[str, Any], log: StatsLog, workers: int, cpus: int) -> str:
    """One line: whether the epoch was input-bound, what took the time, what to try."""
    share = f"{record['wait_fraction']:.0%} of training time waiting for data"
    slowest = log.slowest_field(record)
    per_batch = record["produce_s"] / record["batches"] * 1000
    if not record["input_bound"]:
        return (
            f"epoch {record['epoch']}: not input-bound: {share} "
            f"({per_batch:.1f} ms to produce a batch)"
        )
    parts = [f"epoch {record['epoch']}: input-bound: {share}"]
    tries = []
    if slowest is not None:
        field, fraction = slowest
        work = field.array.work
        parts.append(f"{work} ({field.name}) takes {fraction:.0%} of it")
        hint = field.array.speedup_hint()
        if hint:
            tries.append(hint)
    if workers < 2 and cpus > 1:
        tries.insert(0, f"workers={cpus}")
    if tries:
        parts.append("try " + " or ".join(tries))
    return "; ".join(parts)
