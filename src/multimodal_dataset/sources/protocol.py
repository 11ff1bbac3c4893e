"""The source protocol: per-sample data that is read, decoded or computed a batch at a time.

A `Source` is anything `MultimodalDataset` accepts in place of an array: it declares its
shape and dtype up front (so ``element_spec`` reads no data) and returns a whole batch from
an array of sample indices in one call. `ImageFiles` and `TextTokens` are sources; so is a
user's own subclass.

Bad samples raise a `SampleError` that names the field, the sample index and where the
sample came from (file, table row and column). With ``on_error="replace"`` a source
instead fills the sample with a neutral value (zeros, padding) and reports it; the
dataset counts every replacement and reports them at the end of each epoch, so no sample
is dropped or altered silently.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from multimodal_dataset.io.shared import shareable_state
from multimodal_dataset.io.storage import Requests

OnError = Literal["raise", "replace"]


class SampleError(ValueError):
    """A sample could not be read or converted.

    The message names the dataset field (e.g. ``inputs[0]``), the sample index, the file
    or table row and column, and what was wrong.
    """


class ReplacedSamplesWarning(UserWarning):
    """Samples were replaced (``on_error="replace"``) during an epoch."""


@dataclass(frozen=True)
class Replacement:
    """One sample that a source replaced instead of raising.

    Attributes:
        epoch: The dataset epoch in which the sample was read.
        sample: The sample index in the dataset.
        field: The dataset field, e.g. ``"inputs[0]"``.
        reason: What was wrong, naming the file or table row and column.
    """

    epoch: int
    sample: int
    field: str
    reason: str


@dataclass
class GatherContext:
    """What a source knows about the batch it gathers.

    Attributes:
        field: The dataset field being gathered, for messages (``"inputs[0]"``).
        seed: The dataset's seed (random augmentations draw from it).
        epoch: The dataset's current epoch.
        replaced: ``(sample, reason)`` of the samples replaced in this call.
        width: For a variable-length source (see `Source.buckets`): the length its last
            dimension is padded to in this batch, the same in every shard of a step and
            every worker's chunk; None lets the source choose for its own samples.
        truncated: The samples of this call that a variable-length source cut to its
            largest bucket (reported at the end of the epoch, like replacements).
        executor: The decoding threads of the process that gathers, shared by its
            sources (see `Source.decodes_in_threads`); None: decode in the calling thread.
        threads: How many threads ``executor`` has.
        requests: For a source that reads remote storage (`Source.reads_remotely`): the
            requests in flight and the threads that carry them, the dataset's; None: the
            source's storage's own.
    """

    field: str = "source"
    seed: int = 0
    epoch: int = 0
    replaced: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    width: int | None = None
    truncated: list[int] = dataclasses.field(default_factory=list)
    executor: Executor | None = None
    threads: int = 1
    requests: Requests | None = None


@runtime_checkable
class Bucketed(Protocol):
    """A variable-length source: its last dimension is padded per batch to one of
    ``buckets`` (ascending; `Source` declares ``buckets = None`` for fixed shapes), and
    ``lengths`` gives each sample's own length. `TextTokens(buckets=...)` is one."""

    @property
    def buckets(self) -> tuple[int, ...] | None: ...

    @property
    def lengths(self) -> np.ndarray: ...


@runtime_checkable
class Cached(Protocol):
    """A source that keeps decoded samples in a cache (``cache=``) which can be filled
    ahead of training (`MultimodalDataset.fill_cache`); ``cache`` is None without one."""

    cache: Any

    def uncached(self, indices: np.ndarray | None = None) -> np.ndarray:
        """The samples of ``indices`` (all: None) not in the cache yet."""
        ...

    def fill_cache(
        self, indices: np.ndarray, executor: Executor | None = None, threads: int = 1
    ) -> list[tuple[int, str]]:
        """Decodes ``indices`` into the cache (in ``executor``'s ``threads`` threads);
        ``(sample, problem)`` of those that failed."""
        ...


@runtime_checkable
class Decodable(Protocol):
    """A source of token ids that turns a sample's ids back into readable text
    (`show_batch` draws it)."""

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...


@runtime_checkable
class Categorized(Protocol):
    """A source of category ids that names each id (`show_batch` shows the name);
    `CategoricalColumn` is one."""

    def category_name(self, category_id: int) -> str: ...


@runtime_checkable
class Standardized(Protocol):
    """A source of standardised numbers that knows each column's name, mean and standard
    deviation (``standardizer``; None when not standardised), so `show_batch` can show
    the original values."""

    standardizer: Any


def bucket_boundaries(source: Any) -> tuple[int, ...] | None:
    """The lengths a `Bucketed` source pads a batch to, when there is more than one (a
    single boundary is a fixed shape); None otherwise."""
    buckets = source.buckets if isinstance(source, Bucketed) else None
    return tuple(buckets) if buckets is not None and len(buckets) > 1 else None


def check_on_error(on_error: Any) -> OnError:
    if on_error not in ("raise", "replace"):
        raise ValueError(
            f"on_error must be 'raise' (stop at the first bad sample) or 'replace' (fill it "
            f"with a neutral value and report it at the end of the epoch); got {on_error!r}."
        )
    return on_error  # type: ignore[no-any-return]


def check_rows(rows: Sequence[int] | np.ndarray | None, count: int, what: str) -> np.ndarray | None:
    """Validates the optional table row number of every sample, used in messages: an
    ``int32`` or ``int64`` array is kept as it is (the sources of one table share it)."""
    if rows is None:
        return None
    rows = np.asarray(rows)
    if rows.dtype not in (np.int32, np.int64):
        rows = rows.astype(np.int64)
    if rows.shape != (count,):
        raise ValueError(
            f"{what}: rows must give one table row per sample ({count}); got shape {rows.shape}."
        )
    return rows


class Source(abc.ABC):
    """Per-sample data that `MultimodalDataset` gathers a batch at a time.

    Subclasses implement `shape`, `dtype` and `gather`. The dtype is used as is (the
    dataset's float/int32 policy applies to plain arrays), so a source declares exactly
    what the model receives.

    Attributes:
        on_error: ``"raise"`` or ``"replace"`` (see the module docstring).
        rows: Optional table row number of each sample, named in messages.
        column: Optional table column the samples came from, named in messages.
    """

    on_error: OnError = "raise"
    rows: np.ndarray | None = None
    column: str | None = None
    #: A variable-length source (token ids padded per batch) sets the lengths its last
    #: dimension may be padded to, ascending; ``shape`` then ends with the largest, and
    #: `lengths` gives each sample's own length. None: every batch has ``shape[1:]``.
    buckets: tuple[int, ...] | None = None
    #: What gathering a batch does, for the input-pipeline report (`monitoring`).
    work: str = "reading"
    #: Whether gathering decodes in the dataset's decoding threads (the context's
    #: ``executor``): the dataset then starts them (``threads_per_worker``).
    decodes_in_threads: bool = False
    #: Whether `gather` reads or writes its context (the seed, the epoch, the width,
    #: what it reports); a source that never does (`ArraySource`) is given a shared one.
    reads_context: bool = True

    def reads_remotely(self) -> bool:
        """Whether gathering reads remote storage (and so uses the context's
        ``requests``), for `MultimodalDataset.describe_parallelism`."""
        return False

    def speedup_hint(self) -> str | None:
        """What would make gathering faster (an argument to try), for the input-pipeline
        report when this source takes most of the time; None when nothing obvious."""
        return None

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, ...]:
        """``(num_samples, *sample_shape)``, known without reading any sample."""

    @property
    def lengths(self) -> np.ndarray:
        """Each sample's length along the variable last dimension (at most the largest
        bucket), for a variable-length source."""
        # AttributeError: a fixed-shape source is not `Bucketed` (isinstance checks it).
        raise AttributeError(f"{type(self).__name__} has no variable-length dimension.")

    @property
    @abc.abstractmethod
    def dtype(self) -> np.dtype[Any]:
        """The dtype of every gathered batch."""

    @abc.abstractmethod
    def gather(self, indices: np.ndarray, context: GatherContext) -> np.ndarray:
        """Returns the samples ``indices`` (in that order) as one array of ``shape[1:]``.

        Raises:
            SampleError: For a sample that cannot be read, when ``on_error="raise"``.
        """

    def __len__(self) -> int:
        return self.shape[0]

    def close(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Releases threads or files the source holds; it reopens them when gathering again.

        The dataset calls it when its workers are released (after each epoch, and on
        ``ds.close()``). The default holds nothing.
        """

    @property
    def ndim(self) -> int:
        """The number of dimensions of ``shape``, the sample dimension included."""
        return len(self.shape)

    def describe(self, sample: int) -> str:
        """Names a sample and where it comes from, e.g. ``sample 3 (table row 7, column 'a')``."""
        parts = []
        if self.rows is not None:
            parts.append(f"table row {int(self.rows[sample])}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return f"sample {sample}" + (f" ({', '.join(parts)})" if parts else "")

    def bad_sample(self, context: GatherContext, sample: int, problem: str) -> None:
        """Raises a `SampleError` for ``sample``, or records its replacement.

        Call it where the sample's value has been (or will be) filled with the source's
        neutral value; in ``"raise"`` mode it does not return.
        """
        if self.on_error == "raise":
            raise SampleError(f"{context.field}: {self.describe(sample)}: {problem}.{_FIX}")
        context.replaced.append((sample, f"{self.describe(sample)}: {problem}"))


_FIX = (
    " Fix or remove the sample, or pass on_error='replace' to replace bad samples with a "
    "neutral value and have them reported at the end of each epoch."
)


def sample_bits(flags: np.ndarray) -> np.ndarray | None:
    """A boolean per sample packed into one bit per sample; None when none is set."""
    return np.packbits(flags, bitorder="little") if flags.any() else None


def flagged(bits: np.ndarray | None, indices: np.ndarray) -> np.ndarray:
    """The samples of ``indices`` whose bit is set in `sample_bits`'s ``bits``: a look-up
    per index, O(batch) whatever the number of samples or of flagged ones."""
    if bits is None:
        return np.zeros(0, np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    hit = (bits[indices >> 3] >> (indices & 7).astype(np.uint8)) & 1
    selected: np.ndarray = indices[hit.astype(bool)]
    return selected


class PrecomputedSource(Source):
    """A source whose values were computed up front (token ids, standardised numbers).

    Samples found bad while computing are kept in ``problems`` (sample -> what was
    wrong): with ``on_error="raise"`` the constructor raised already; with ``"replace"``
    every batch that contains one reports it, so the epoch report counts it.
    """

    work = "gathering precomputed values"

    def __init__(
        self,
        values: np.ndarray,
        problems: Mapping[int, str],
        on_error: OnError,
        rows: np.ndarray | None,
        column: str | None,
    ) -> None:
        self.values = values
        self.on_error = on_error
        self.rows = rows
        self.column = column
        self.problems = dict(problems)
        # One bit per sample, set for the bad ones (built once; none when all are good).
        self._bad_bits: np.ndarray | None = None
        if self.problems:
            bad = np.zeros(len(values), dtype=bool)
            bad[np.fromiter(self.problems, dtype=np.int64, count=len(self.problems))] = True
            self._bad_bits = sample_bits(bad)

    def __getstate__(self) -> dict[str, Any]:
        # To a worker process: the precomputed arrays (values, lengths, rows) as files it
        # maps, written once, not a copy per worker.
        return shareable_state(self)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.values.dtype

    def gather(self, indices: np.ndarray, context: GatherContext) -> np.ndarray:
        self.report_bad(indices, context)
        batch: np.ndarray = self.values[indices]
        return batch

    def report_bad(self, indices: np.ndarray, context: GatherContext) -> None:
        """Raises for (or records) the bad samples among ``indices`` (see `bad_sample`).

        A look-up in a bit per sample: O(batch), whatever the number of samples or of bad
        ones (``np.isin`` sorted them all on every batch).
        """
        for sample in flagged(self._bad_bits, indices):
            self.bad_sample(context, int(sample), self.problems[int(sample)])

    def raise_or_keep(self, what: str) -> None:
        """At construction: raises for the first problem in ``"raise"`` mode.

        Args:
            what: What is being built, e.g. ``"TextTokens"``, for the message.
        """
        if self.problems and self.on_error == "raise":
            sample = min(self.problems)
            more = len(self.problems) - 1
            also = f" ({more} more sample{'s' if more > 1 else ''} also bad)" if more else ""
            raise SampleError(
                f"{what}: {self.describe(sample)}: {self.problems[sample]}{also}.{_FIX}"
            )
