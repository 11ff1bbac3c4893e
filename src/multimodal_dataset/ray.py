"""`RayWorkers`: produce batches (and fill caches) in Ray actors, on one machine or a cluster.

```python
from multimodal_dataset import from_table
from multimodal_dataset.ray import RayWorkers

train, val = from_table("s3://bucket/table.parquet", image="image", text="caption",
                        target="label", image_size=(224, 224),
                        workers=RayWorkers(num_actors=8, resources={"CPU": 4}))
model.fit(train, epochs=5)
```

Each actor receives the dataset's sources once (through Ray's object store: one copy per
machine) and produces whole batches with its own decoding threads (one per CPU of its
``resources``). The dataset asks for batch ``k`` by its plan (epoch, position, sample
indices: a pure function of the seed), from its prefetch threads: at most ``prefetch``
batches are in flight, and they are served in order. A batch whose actor dies (a lost
node, the out-of-memory killer) is produced again by another actor and the dead one is
replaced: the stream is unchanged, sample for sample. An exception raised by a source in
an actor reaches ``fit`` with its type and message, as from the dataset's own workers.

The actors are the dataset's: ``close()`` stops them, and so does the release that follows
every ``fit`` (``engine.gatherer.KEEP_ALIVE_S`` after the last batch; the next batch
starts them again). The dataset pickles (without its actors). Sources that read files
need those paths on every machine of the cluster (a shared file system or object
storage), absolute (an actor resolves a relative path, and a relative ``cache=``, in its
own working directory); arrays in memory travel with the sources.

Needs ``pip install "multimodal-dataset[ray]"``. Ray is connected to with ``ray.init``
unless it is initialized already (``address=None``: the ``RAY_ADDRESS`` cluster, or a new
local one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from multimodal_dataset._utils.checks import check_int
from multimodal_dataset._utils.optional import optional_import
from multimodal_dataset.batching.sampler import BatchPlan
from multimodal_dataset.batching.structure import Field
from multimodal_dataset.engine.filling import bounded_map, fill_span
from multimodal_dataset.engine.gathering import (
    Gathered,
    SharedThreads,
    WorkerError,
    gather_fields,
    sendable,
)
from multimodal_dataset.engine.pools import RunningPool

__all__ = ["RayWorkers"]

#: Ray's own names for the resources an actor options call takes as arguments.
_RESOURCE_ARGUMENTS = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}


@dataclasses.dataclass(frozen=True)
class RayWorkers:
    """Ray actors that produce the dataset's batches (``workers=RayWorkers(...)``) or fill
    its caches (``ds.fill_cache(workers=RayWorkers(...))``); see the module docstring.

    Args:
        num_actors: How many actors; each produces one batch at a time, so ``prefetch``
            (by default ``max(2, num_actors)`` with Ray workers) should be at least this.
        resources: What each actor reserves, in Ray's names: ``{"CPU": 4}`` (the
            default is one CPU), ``"GPU"``, ``"memory"`` in bytes, or a custom resource
            of your cluster. An actor decodes with one thread per CPU.
        address: The cluster to connect to when Ray is not initialized yet (``"auto"``, a
            ``ray://`` address); None lets ``ray.init`` decide.
        max_retries: How many times a batch is produced again after its actor died before
            the dataset gives up with a `WorkerError`.
        spread: Place the actors on as many machines as possible (Ray's ``SPREAD``
            scheduling), rather than where Ray finds room first.
        start_timeout_s: How long an actor may wait to be placed and started (the
            cluster may have no room left: the actors of another dataset hold it) before
            the dataset raises a `WorkerError` saying what is free and what was asked.

    Raises:
        TypeError, ValueError: For a count that is not a positive integer or resources
            that are not a mapping of names to non-negative numbers.
    """

    num_actors: int = 2
    resources: Mapping[str, float] | None = None
    address: str | None = None
    max_retries: int = 3
    spread: bool = True
    start_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        check_int(self.num_actors, "num_actors", what="Ray actors")
        check_int(self.max_retries, "max_retries", minimum=0, what="retries per batch")
        resources = dict(self.resources) if self.resources is not None else {"CPU": 1}
        for name, amount in resources.items():
            if not isinstance(name, str) or isinstance(amount, bool):
                raise TypeError(
                    f"RayWorkers(resources=...) maps resource names to amounts, e.g. "
                    f'{{"CPU": 4}}; got {name!r}: {amount!r}.'
                )
            if not isinstance(amount, int | float) or amount < 0:
                raise ValueError(
                    f"RayWorkers(resources=...): {name!r} must be a non-negative number "
                    f"(got {amount!r})."
                )
        object.__setattr__(self, "resources", resources)

    @property
    def num_workers(self) -> int:
        """The number of actors."""
        return self.num_actors

    @property
    def threads_per_worker(self) -> int:
        """Decoding threads per actor: one per CPU it reserves (at least one)."""
        return max(1, int((self.resources or {}).get("CPU", 1)))

    def describe(self) -> str:
        """One line for `MultimodalDataset.describe_parallelism`."""
        resources = ", ".join(f"{k}: {v:g}" for k, v in (self.resources or {}).items())
        return (
            f"{self.num_actors} Ray actors ({resources} each), each producing whole batches "
            "asked for by the prefetch threads"
        )

    def actor_options(self) -> dict[str, Any]:
        """The keyword arguments of Ray's ``.options`` for each actor."""
        options: dict[str, Any] = {"max_restarts": 0, "max_concurrency": 1}
        custom = {}
        for name, amount in (self.resources or {}).items():
            if name in _RESOURCE_ARGUMENTS:
                options[_RESOURCE_ARGUMENTS[name]] = amount
            else:
                custom[name] = amount
        if custom:
            options["resources"] = custom
        if self.spread:
            options["scheduling_strategy"] = "SPREAD"
        return options

    def start(self, fields: Sequence[Field], threads: int, io_requests: int) -> RunningPool:
        """Actors holding ``fields`` (sent once), producing batches of them."""
        return RayPool(self, tuple(fields), threads, io_requests)

    def start_filling(self, source: Any) -> RunningPool:
        """Actors holding ``source``, filling its cache."""
        return RayPool(self, source, self.threads_per_worker, 1)


def _ray() -> Any:
    return optional_import("ray", "RayWorkers")


class _Failure:
    """What an actor returns for an exception a source raised (sent as a value, so that
    it reaches the dataset with its own type and message, not wrapped by Ray)."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class GatherActor:
    """The body of each Ray actor: a dataset's fields (or one image source to fill), held
    once, and the actor's own decoding and storage threads."""

    def __init__(self, payload: Any, threads: int, requests: int) -> None:
        self.payload = payload
        self.shared = SharedThreads.make(threads, requests)

    def gather(
        self, seed: int, epoch: int, widths: Sequence[int | None] | None, indices: Any
    ) -> Gathered | _Failure:
        try:
            return gather_fields(self.payload, seed, epoch, indices, widths, self.shared)
        except Exception as error:
            return _Failure(sendable(error))

    def fill(self, span: tuple[int, int]) -> tuple[int, list[tuple[int, str]]] | _Failure:
        decoding = self.shared.decoding
        try:
            return fill_span(self.payload, span, decoding.executor(), decoding.threads)
        except Exception as error:
            return _Failure(sendable(error))

    def pid(self) -> int:
        return os.getpid()


@functools.cache
def _actor_class() -> Any:
    return _ray().remote(GatherActor)


def _summary(error: Exception) -> str:
    """The first and last lines of a Ray error (what happened; the exception that did it)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: " + (lines[0] if lines else "")
    if len(lines) > 1:
        text += f" ... {lines[-1]}"
    return text


class RayPool:
    """The running actors of one dataset: each call takes the least busy actor; a call
    whose actor died goes to another, and the dead one is replaced."""

    def __init__(self, spec: RayWorkers, payload: Any, threads: int, requests: int) -> None:
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=spec.address)
        self.spec = spec
        self._ray = ray
        self._dead = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)
        self._payload = ray.put(payload)
        self._args = (threads, requests)
        self._lock = threading.Lock()
        self._closed = False
        self.actors: list[Any] = []
        self._started: dict[int, Any] = {}  # id(actor) -> its pid, asked for at creation
        self.actors = [self._new_actor() for _ in range(spec.num_actors)]
        self._busy = [0] * spec.num_actors

    def _new_actor(self) -> Any:
        options = self.spec.actor_options()
        actor = _actor_class().options(**options).remote(self._payload, *self._args)
        self._started[id(actor)] = actor.pid.remote()
        return actor

    def _wait_started(self, actor: Any) -> None:
        """Returns once ``actor`` runs; a `WorkerError` if it was not placed in time."""
        pending = self._started.get(id(actor))
        if pending is None:
            return
        ready, _ = self._ray.wait([pending], timeout=self.spec.start_timeout_s)
        if ready:
            self._started.pop(id(actor), None)
            return
        free = self._ray.available_resources()
        shown = ", ".join(f"{k}: {v:g}" for k, v in sorted(free.items()) if "node:" not in k)
        raise WorkerError(
            f"A Ray actor asking for {dict(self.spec.resources or {})} was not started within "
            f"{self.spec.start_timeout_s:g} s: the cluster has {shown or 'nothing'} free. The "
            "actors of another dataset may hold the rest (close() it, or share the cluster "
            "with fractional resources such as RayWorkers(resources={'CPU': 0.5})), or the "
            "cluster is smaller than num_actors x resources."
        )

    def _take(self, avoid: int | None) -> tuple[int, Any]:
        with self._lock:
            if self._closed:
                raise WorkerError("The dataset's Ray actors were stopped (close()).")
            order = sorted(range(len(self.actors)), key=lambda s: (s == avoid, self._busy[s]))
            slot = order[0]
            self._busy[slot] += 1
            return slot, self.actors[slot]

    def _give_back(self, slot: int) -> None:
        with self._lock:
            self._busy[slot] -= 1

    def _replace(self, slot: int, actor: Any) -> None:
        with self._lock:
            if self._closed or self.actors[slot] is not actor:
                return  # replaced by another caller already
            self.actors[slot] = self._new_actor()
        with contextlib.suppress(Exception):  # dead already
            self._ray.kill(actor, no_restart=True)

    def _call(self, method: str, args: tuple[Any, ...], where: str) -> Any:
        errors: list[str] = []
        avoid = None
        for _ in range(self.spec.max_retries + 1):
            slot, actor = self._take(avoid)
            try:
                self._wait_started(actor)
                result = self._ray.get(getattr(actor, method).remote(*args))
            except self._dead as error:
                errors.append(_summary(error))
                self._replace(slot, actor)
                avoid = slot
                continue
            finally:
                self._give_back(slot)
            if isinstance(result, _Failure):
                raise result.error
            return result
        raise WorkerError(
            f"{where} could not be produced: its Ray actor died {len(errors)} times "
            f"(max_retries={self.spec.max_retries}). The last error: {errors[-1]}. Check the "
            "cluster's memory (the out-of-memory killer) and nodes, or use fewer or larger "
            "actors (RayWorkers(resources=...))."
        )

    def gather(self, plan: BatchPlan) -> Gathered:
        """The arrays of ``plan``, gathered in an actor (writable copies, not views of
        Ray's read-only object store)."""
        args = (plan.seed, plan.epoch, plan.widths, plan.indices)
        gathered: Gathered = self._call(
            "gather", args, f"Batch {plan.position} of epoch {plan.epoch}"
        )
        gathered.arrays = [a if a.flags.writeable else a.copy() for a in gathered.arrays]
        return gathered

    def fill(self, spans: Iterable[tuple[int, int]]) -> Iterator[tuple[int, list[tuple[int, str]]]]:
        """Fills the cache over ``spans`` with every actor, two spans each in flight."""
        in_flight = 2 * len(self.actors)
        with ThreadPoolExecutor(in_flight, "multimodal_dataset_ray_fill") as threads:

            def fill(span: tuple[int, int]) -> tuple[int, list[tuple[int, str]]]:
                return self._call("fill", (span,), f"Samples {span[0]}-{span[1] - 1}")  # type: ignore[no-any-return]

            yield from bounded_map(threads, fill, spans, in_flight)

    def pids(self) -> list[int]:
        """The process id of each actor (for tests and diagnostics)."""
        return [self._ray.get(a.pid.remote()) for a in list(self.actors)]

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stops every actor (a later call fails; the dataset starts a new pool)."""
        with self._lock:
            self._closed = True
            actors, self.actors = self.actors, []
        for actor in actors:
            with contextlib.suppress(Exception):  # Ray shut down already, or it is gone
                self._ray.kill(actor, no_restart=True)
