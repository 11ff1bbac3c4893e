"""`StepOrder`: the samples and padded lengths of one global step of an epoch, for
datasets whose steps are decided together: variable-length inputs (padded per step, the
first two steps kept apart) and grouping by length.

A step is computed on demand from ``(seed, epoch)`` alone: its positions of the shuffled
order through `IndexShuffle`, or, grouped, the window of `GROUP_WINDOW_STEPS` steps that
holds it. Nothing is proportional to the number of samples: a step costs O(step), a
window O(window), and the first-steps rule reads a bounded number of steps.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np

from multimodal_dataset._utils.picklable import Picklable
from multimodal_dataset.batching.first_steps import FirstSteps, plan_first_steps
from multimodal_dataset.batching.order import GROUP_WINDOW_STEPS, IndexShuffle, group_window
from multimodal_dataset.batching.padding import Padding

#: How many computed steps, windows and epochs' first-step plans are kept (a few
#: threads serve neighbouring steps at once).
KEPT = 4

T = TypeVar("T")


class StepOrder(Picklable):
    """The samples of every global step of an epoch, computed a step (or a window) at a
    time.

    Args:
        num_samples: How many samples the dataset has.
        step: Samples per global step (batch size times shard count).
        seed: The seed the order is derived from.
        shuffle: Whether each epoch visits the samples in a new random order.
        padding: The variable-length fields (see `Padding`), or None.
        group_ranks: Per sample, the rank of the bucket to group by (`group_window`), or
            None not to group.
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_kept": OrderedDict,
        "_lock": threading.Lock,
    }

    def __init__(
        self,
        num_samples: int,
        step: int,
        seed: int,
        shuffle: bool,
        padding: Padding | None,
        group_ranks: np.ndarray | None,
    ) -> None:
        self.num_samples = num_samples
        self.step = step
        self.seed = seed
        self.shuffle = shuffle
        self.padding = padding
        self.group_ranks = group_ranks if shuffle else None
        self.full_steps = num_samples // step
        self._kept: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def samples(self, epoch: int, step: int) -> np.ndarray:
        """Every sample of global step ``step`` of ``epoch`` (fewer for a last partial
        step), after the first-steps rule."""
        return self._step(epoch, self.first_steps(epoch).source(step))

    def samples_at(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        """The samples at ``positions`` (each in ``[0, num_samples)``) of the epoch's
        order: mostly one step's, two where a padded batch wraps around to the start."""
        steps = positions // self.step
        first, last = int(steps[0]), int(steps[-1])
        if first == last:
            samples: np.ndarray = self.samples(epoch, first)[positions - first * self.step]
            return samples
        out = np.empty(len(positions), dtype=np.int64)
        for step in np.unique(steps):
            where = steps == step
            out[where] = self.samples(epoch, int(step))[positions[where] - step * self.step]
        return out

    def widths(self, epoch: int, step: int) -> tuple[int | None, ...]:
        """Per field, the length global step ``step`` of ``epoch`` is padded to."""
        assert self.padding is not None
        plan = self.first_steps(epoch)
        widths = list(self._widths(epoch, plan.source(step)))
        for k in plan.largest:
            widths[k] = self.padding.largest(k)
        if step == 1:
            for k, width in plan.second.items():
                widths[k] = width
        return tuple(widths)

    def first_steps(self, epoch: int) -> FirstSteps:
        """How ``epoch`` keeps its first two steps' lengths apart (see
        `plan_first_steps`), computed once per epoch."""
        if self.padding is None:
            return _NO_RULE
        return self._keep(
            ("first", epoch),
            lambda: plan_first_steps(
                lambda step: self._widths(epoch, step),
                self.full_steps,
                self.padding,  # type: ignore[arg-type]
                self.shuffle,
                self.num_samples % self.step > 0,
            ),
        )

    def _widths(self, epoch: int, step: int) -> tuple[int | None, ...]:
        assert self.padding is not None
        return self.padding.widths(self._step(epoch, step), step < self.full_steps)

    def _step(self, epoch: int, step: int) -> np.ndarray:
        """Step ``step`` of the epoch's order, before the first-steps rule."""
        if self.group_ranks is not None and step < self.full_steps:
            window, row = divmod(step, GROUP_WINDOW_STEPS)
            steps = self._keep(("window", epoch, window), lambda: self._window(epoch, window))
            samples: np.ndarray = steps[row]
            return samples
        return self._keep(("step", epoch, step), lambda: self._positions(epoch, step))

    def _positions(self, epoch: int, step: int) -> np.ndarray:
        positions = np.arange(
            step * self.step, min((step + 1) * self.step, self.num_samples), dtype=np.int64
        )
        if not self.shuffle:
            return positions
        return IndexShuffle(self.num_samples, self.seed, epoch)(positions)

    def _window(self, epoch: int, window: int) -> np.ndarray:
        """The steps of a grouped window (see `group_window`), as rows."""
        start = window * GROUP_WINDOW_STEPS * self.step
        stop = min(start + GROUP_WINDOW_STEPS * self.step, self.full_steps * self.step)
        positions = np.arange(start, stop, dtype=np.int64)
        samples = IndexShuffle(self.num_samples, self.seed, epoch)(positions)
        assert self.group_ranks is not None
        return group_window(samples, self.group_ranks, self.step, self.seed, epoch, window)

    def _keep(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``, kept with the last `KEPT` values of its kind."""
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                kept: T = self._kept[key]
                return kept
        value = compute()  # outside the lock: first_steps computes steps itself
        with self._lock:
            self._kept[key] = value
            kind = [k for k in self._kept if k[0] == key[0]]
            for old in kind[: max(0, len(kind) - KEPT)]:
                del self._kept[old]
        return value


_NO_RULE = FirstSteps()
