"""Parallel gathering of one batch's samples in worker threads or processes.

Why not Keras's own ``PyDataset`` worker pool? Its ``OrderedEnqueuer`` computes batches
ahead of the training loop and, when an iteration stops early, keeps the batches it had
computed and serves them at the start of the next epoch. ``fit`` always stops early once:
it reads one batch to build the model and its metrics, then starts the first epoch. From
then on every epoch of ``fit(ds, workers>1)`` mixes batches requested for the previous epoch
with batches of the new one, so with Keras's ``shuffle=True`` some samples are trained twice
in an epoch and others not at all on JAX and PyTorch (the documentation's epochs guide
gives the measurement; ``tests/integration/test_training.py`` keeps it as a canary). A
``PyDataset`` only sees a batch index, so no dataset can repair that index stream.

Pools do not outlive their use: the dataset releases them (and the decoding threads of
its sources) `KEEP_ALIVE_S` seconds after each epoch unless the next batch comes first,
because TensorFlow keeps every dataset passed to ``fit`` alive and its pools with it.
A worker process that dies (killed by the out-of-memory killer, say) or raises an
exception that cannot be pickled is reported as a `WorkerError` naming the batch, and the
next batch starts a fresh pool.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import multiprocessing
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ClassVar

import numpy as np

from multimodal_dataset._utils.picklable import Picklable
from multimodal_dataset.batching.sampler import BatchPlan
from multimodal_dataset.batching.structure import Field
from multimodal_dataset.engine.gathering import (
    Gathered,
    SharedThreads,
    WorkerError,
    gather_fields,
    gather_in_process,
    init_process,
)
from multimodal_dataset.engine.parallelism import Parallelism
from multimodal_dataset.engine.pools import RunningPool

#: Seconds an idle pool is kept after an epoch ends, for the next epoch to reuse.
KEEP_ALIVE_S = 2.0


class Gatherer(Picklable):
    """Gathers the arrays of a batch inline, in threads, or in processes, and owns every
    pool a dataset starts (see `Parallelism`): the workers, the decoding threads its
    sources share, and the prefetch threads. `close` (or the release timer) stops them
    all, and the sources' own threads with them.

    Args:
        fields: Every array of the dataset (inputs, targets, weights), in batch order.
        parallelism: How many workers (threads or processes, started with the default
            multiprocessing start method), decoding threads and prefetch threads.
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_executor": lambda: None,
        "_remote": lambda: None,
        "_prefetch": lambda: None,
        "_timer": lambda: None,
        "_lock": threading.Lock,
        "_releasing": threading.Lock,
        "_pid": os.getpid,
    }

    def __init__(self, fields: Sequence[Field], parallelism: Parallelism) -> None:
        self.fields = tuple(fields)
        self.parallelism = parallelism
        self.workers = parallelism.workers
        self.use_multiprocessing = parallelism.use_processes
        self.shared = SharedThreads.make(parallelism.threads_per_worker, parallelism.io_requests)
        self._executor: Executor | None = None
        self._remote: RunningPool | None = None  # a WorkerPool's workers, once started
        self._prefetch: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        # Held while a batch is served (`serving`) and while the release timer closes the
        # pools and sources: the two exclude each other, so a batch never reads from a
        # source being closed, nor a release cancels a batch being prefetched for it.
        self._releasing = threading.Lock()
        self._timer: threading.Timer | None = None
        # The process that owns the pools: a forked child inherits this object (and its
        # locks, maybe held by a thread that does not exist there) and must not touch them.
        self._pid = os.getpid()
        self._uses = 0  # counts gathers, so a release timer knows if the pool was used
        # Whether anything holds threads or processes (a pool, or sources' own threads).
        self._releasable = (
            self.parallel
            or parallelism.pool is not None
            or parallelism.prefetch > 0
            or not all(f.in_memory for f in fields)
        )

    @property
    def parallel(self) -> bool:
        return self.parallelism.parallel

    def prefetch_executor(self) -> ThreadPoolExecutor:
        """The prefetch threads (`Prefetcher` submits to them), started on first use."""
        with self._lock:
            if self._prefetch is None:
                depth = max(1, self.parallelism.prefetch)
                self._prefetch = ThreadPoolExecutor(depth, "multimodal_dataset_prefetch")
            return self._prefetch

    def gather(self, plan: BatchPlan) -> Gathered:
        """One array per field, holding the plan's samples in batch order, what sources
        reported, and each field's gathering time (summed over workers).

        Errors raised in a worker thread or process are re-raised here, with their type
        and message.

        Raises:
            WorkerError: If a worker process died; the next call starts a fresh pool.
        """
        indices, seed, epoch, widths = plan.indices, plan.seed, plan.epoch, plan.widths
        if not self._releasable:  # plain arrays inline: no pool, nothing to release
            return gather_fields(self.fields, seed, epoch, indices, widths)
        shared = self.shared
        pool = self.parallelism.pool
        with self._lock:
            self._uses += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if pool is not None:
                if self._remote is None:
                    parallelism = self.parallelism
                    threads, requests = parallelism.threads_per_worker, parallelism.io_requests
                    self._remote = pool.start(self.fields, threads, requests)
                    _live.add(self)
                remote = self._remote
        if pool is not None:  # whole batches, produced elsewhere
            return remote.gather(plan)
        with self._lock:
            executor = self._get_executor() if self.parallel and len(indices) > 1 else None
        if executor is None:
            return gather_fields(self.fields, seed, epoch, indices, widths, shared)
        chunks = [c for c in np.array_split(indices, min(self.workers, len(indices))) if len(c)]
        task: Callable[[np.ndarray], Gathered]
        if self.use_multiprocessing:
            task = functools.partial(gather_in_process, seed, epoch, widths)
        else:
            task = functools.partial(
                gather_fields, self.fields, seed, epoch, widths=widths, shared=shared
            )

        try:
            parts = list(executor.map(task, chunks))
        except BrokenProcessPool:
            where = f"batch {plan.position} of epoch {epoch}"
            raise self._worker_died(executor, where, indices) from None
        return Gathered.joined(parts)

    def _worker_died(self, executor: Executor, where: str, indices: np.ndarray) -> WorkerError:
        """Discards the broken pool (the next batch starts a new one) and explains."""
        processes = list((getattr(executor, "_processes", None) or {}).values())
        codes = sorted({p.exitcode for p in processes if p.exitcode not in (None, 0)})
        with self._lock:
            if self._executor is executor:
                self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)
        how = "terminated abruptly"
        if codes:
            how += " (" + ", ".join(_describe_exit(c) for c in codes) + ")"
        shown = ", ".join(map(str, indices[:8].tolist())) + (", ..." if len(indices) > 8 else "")
        return WorkerError(
            f"A worker process died while gathering {where} (samples {shown}): it "
            f"was {how}. The usual cause is the out-of-memory killer: use fewer workers, "
            "smaller batches or images, or threads (use_multiprocessing=False). The next "
            "batch starts a fresh pool."
        )

    def serving(self) -> threading.Lock:
        """Hold while serving a batch (in the thread that serves them): a pending release
        waits for the batch, and a batch waits for a release in progress to finish.
        Gathers in worker or prefetch threads do not take it, so a release can wait for
        them."""
        return self._releasing

    def release_soon(self, delay: float | None = None) -> None:
        """Releases the pool (and sources' threads) after ``delay`` seconds
        (`KEEP_ALIVE_S` by default) unless a batch is gathered first."""
        delay = KEEP_ALIVE_S if delay is None else delay
        if not self._releasable:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            # The timer holds the gatherer weakly: it must not keep a dropped dataset alive.
            timer = threading.Timer(delay, _release_if_unused, args=(weakref.ref(self), self._uses))
            timer.daemon = True
            self._timer = timer
        timer.start()

    def _release_if_unused(self, uses: int) -> None:
        with self._releasing:
            with self._lock:
                if uses != self._uses:
                    return
                self._timer = None
            self.close()

    def _get_executor(self) -> Executor:
        if self._executor is None:
            if self.use_multiprocessing:
                self._executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context(),
                    initializer=init_process,
                    initargs=(
                        self.fields,
                        self.parallelism.threads_per_worker,
                        self.parallelism.io_requests,
                    ),
                )
            else:
                self._executor = ThreadPoolExecutor(self.workers, "multimodal_dataset")
            _live.add(self)
        return self._executor

    def _take_pools(self) -> list[Executor | RunningPool]:
        """The prefetch and worker pools, no longer this gatherer's (in the order they are
        stopped: a prefetched batch may be gathering in the workers), and no release timer
        pending."""
        with self._lock:
            started = (self._prefetch, self._executor, self._remote)
            pools = [p for p in started if p is not None]
            self._prefetch = self._executor = self._remote = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        return pools

    def abandon(self) -> None:
        """Releases everything without waiting (the dataset is being freed). Nothing in a
        process that only inherited this gatherer (a forked worker collecting garbage)."""
        if getattr(self, "_pid", None) != os.getpid():
            return
        for pool in self._take_pools():
            pool.shutdown(wait=False, cancel_futures=True)
        if self._releasable and not sys.is_finalizing():  # no new work at shutdown
            with contextlib.suppress(Exception):  # e.g. freed in a thread it would join
                self.shared.close(wait=False)
                self._close_sources()

    def _close_sources(self) -> None:
        for field in self.fields:
            field.array.close()

    def close(self) -> None:
        """Stops every pool (prefetch, workers, decoding) and the sources' own threads
        (they all restart on the next batch)."""
        for pool in self._take_pools():
            pool.shutdown(wait=True, cancel_futures=True)
        self.shared.close()
        self._close_sources()

    def __del__(self) -> None:
        if getattr(self, "_pid", None) != os.getpid():
            return
        for name in ("_prefetch", "_executor", "_remote"):
            pool = getattr(self, name, None)
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)


def _release_if_unused(gatherer: weakref.ref[Gatherer], uses: int) -> None:
    alive = gatherer()
    if alive is not None:
        alive._release_if_unused(uses)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        killer = ", which the out-of-memory killer sends" if name == "SIGKILL" else ""
        return f"killed by {name}{killer}"
    return f"exit code {code}"


_live: weakref.WeakSet[Gatherer] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for gatherer in list(_live):
        gatherer.close()
