"""Parallel gathering of one batch's samples in worker threads or processes.

Why not Keras's own ``PyDataset`` worker pool? Its ``OrderedEnqueuer`` computes batches
ahead of the training loop and, when an iteration stops early, keeps the batches it had
computed and serves them at the start of the next epoch. ``fit`` always stops early once:
it reads one batch to build the model and its metrics, then starts the first epoch. From
then on every epoch of ``fit(ds, workers>1)`` mixes batches requested for the previous epoch
with batches of the new one, so with Keras's ``shuffle=True`` some samples are trained twice
in an epoch and others not at all (measured with Keras 3.15.1, workers=3 and 61 samples:
7 or 8 samples missing from every epoch on JAX and PyTorch; TensorFlow was not affected;
``tests/test_training.py`` keeps that measurement as a canary). A ``PyDataset`` only sees
a batch index, so no dataset can repair that index stream.
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import weakref
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np

from multimodal_dataset.sources import GatherContext, Replacement
from multimodal_dataset.structure import Field

Gathered = tuple[list[np.ndarray], list[Replacement]]

# In worker processes: the fields to gather from, set once by the pool initializer.
_PROCESS_FIELDS: tuple[Field, ...] = ()


def _init_process(fields: tuple[Field, ...]) -> None:
    global _PROCESS_FIELDS
    _PROCESS_FIELDS = fields


def gather_fields(fields: Sequence[Field], seed: int, epoch: int, indices: np.ndarray) -> Gathered:
    """One array per field, holding the samples ``indices`` in that order, and the
    samples that sources replaced (``on_error="replace"``)."""
    arrays, replaced = [], []
    for field in fields:
        if not field.is_source:  # a plain array needs no context (the hot path)
            arrays.append(field.gather(indices, _NO_CONTEXT))
            continue
        context = GatherContext(field.name, seed, epoch)
        arrays.append(field.gather(indices, context))
        replaced += [Replacement(epoch, s, field.name, r) for s, r in context.replaced]
    return arrays, replaced


_NO_CONTEXT = GatherContext()


def _gather_in_process(seed: int, epoch: int, indices: np.ndarray) -> Gathered:
    return gather_fields(_PROCESS_FIELDS, seed, epoch, indices)


class Gatherer:
    """Gathers the arrays of a batch inline, in threads, or in processes.

    Args:
        fields: Every array of the dataset (inputs, targets, weights), in batch order.
        workers: How many threads or processes gather one batch's samples in parallel;
            1 gathers inline in the calling thread.
        use_multiprocessing: Use processes (started with the default multiprocessing start
            method, fork or spawn) instead of threads.
    """

    def __init__(self, fields: Sequence[Field], workers: int, use_multiprocessing: bool) -> None:
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ValueError(f"workers must be a positive integer; got workers={workers!r}.")
        self.fields = tuple(fields)
        self.workers = int(workers)
        self.use_multiprocessing = bool(use_multiprocessing)
        self._executor: Executor | None = None

    @property
    def parallel(self) -> bool:
        return self.workers > 1 or self.use_multiprocessing

    def gather(self, indices: np.ndarray, seed: int, epoch: int) -> Gathered:
        """One array per field, holding the samples ``indices`` in that order, and the
        samples that sources replaced.

        Errors raised in a worker thread or process are re-raised here, with their type
        and message.
        """
        if not self.parallel or len(indices) < 2:
            return gather_fields(self.fields, seed, epoch, indices)
        chunks = [c for c in np.array_split(indices, min(self.workers, len(indices))) if len(c)]
        executor = self._get_executor()
        if self.use_multiprocessing:
            task = functools.partial(_gather_in_process, seed, epoch)
        else:
            task = functools.partial(gather_fields, self.fields, seed, epoch)
        parts = list(executor.map(task, chunks))
        arrays = [np.concatenate(a) for a in zip(*(p[0] for p in parts), strict=True)]
        return arrays, [r for p in parts for r in p[1]]

    def _get_executor(self) -> Executor:
        if self._executor is None:
            if self.use_multiprocessing:
                self._executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context(),
                    initializer=_init_process,
                    initargs=(self.fields,),
                )
            else:
                self._executor = ThreadPoolExecutor(self.workers, "multimodal_dataset")
            _live.add(self)
        return self._executor

    def close(self) -> None:
        """Stops the worker threads or processes (they restart on the next batch)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_executor"] = None
        return state

    def __del__(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


_live: weakref.WeakSet[Gatherer] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for gatherer in list(_live):
        gatherer.close()
