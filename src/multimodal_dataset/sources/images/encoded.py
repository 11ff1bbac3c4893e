"""`EncodedImages`: what every source of encoded images (files, bytes in a table) shares.

A batch's images are read and decoded in a pool of threads (Pillow and simplejpeg release
the GIL while they decode and resize), each thread taking a share of the batch; then the
augmentation is applied and the batch scaled to the output dtype. A subclass says only
where the encoded bytes of one sample come from (`read`) and how to name it in messages
(`where`). What an image becomes is `ImageDecoder`'s business (see ``image_decoding``).
"""

from __future__ import annotations

import abc
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from multimodal_dataset._utils.checks import check_choice, check_int
from multimodal_dataset._utils.picklable import Picklable
from multimodal_dataset.io.shared import shareable_state
from multimodal_dataset.io.storage import Requests, Storage
from multimodal_dataset.sources.images.decoded_cache import (
    CACHE_VALIDATIONS,
    CacheValidation,
    DecodedCache,
    identity_key,
)
from multimodal_dataset.sources.images.decoding import (
    INTERPOLATIONS,
    ColorMode,
    ImageDecoder,
    pillow,
)
from multimodal_dataset.sources.images.errors import explain
from multimodal_dataset.sources.protocol import (
    GatherContext,
    OnError,
    Source,
    check_on_error,
    check_rows,
)

if TYPE_CHECKING:
    from multimodal_dataset.sources.images.augmentation import ImageAugmentation

#: The largest file read by default (a 24-megapixel uncompressed RGB TIFF is 72 MB).
DEFAULT_MAX_FILE_BYTES = 256 * 2**20


def check_value_range(value_range: Any, dtype: np.dtype[Any]) -> tuple[float, float]:
    """``(low, high)``, the values 0 and 255 become: (0, 1) by default, (0, 255) for
    uint8 (the only range uint8 has).

    Raises:
        ValueError: For anything but two finite numbers, low below high, or another
            range with ``dtype="uint8"``.
    """
    if value_range is None:
        return (0.0, 255.0) if dtype == np.uint8 else (0.0, 1.0)
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        low, high = math.nan, math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(
            f"value_range must be (low, high), two finite numbers with low < high, e.g. "
            f"(0, 1) (the default), (0, 255) (keras.applications' preprocess_input) or "
            f"(-1, 1); got {value_range!r}."
        )
    if dtype == np.uint8 and (low, high) != (0.0, 255.0):
        raise ValueError(
            f"dtype='uint8' holds the values 0-255 as decoded; value_range={value_range!r} "
            "needs a float dtype (leave dtype=None)."
        )
    return low, high


class EncodedImages(Source, Picklable):
    """Encoded images decoded, converted and resized to one fixed size, a batch at a time.

    Subclasses implement `read` (the encoded bytes of one sample) and `where` (what to
    call the sample's image in messages), and pass the shared arguments to ``__init__``.
    """

    work = "image decoding"
    decodes_in_threads = True
    #: Where a subclass reads remote images through (set by it), and whether it does.
    storage: Storage | None = None
    _remote: bool = False
    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_keys": lambda: None,  # identities are taken again in each process
    }

    def __getstate__(self) -> dict[str, Any]:
        # To a worker process: large per-sample arrays (rows) as files it maps.
        return shareable_state(self, super().__getstate__())

    def __init__(
        self,
        count: int,
        size: tuple[int, int],
        *,
        color_mode: ColorMode = "rgb",
        dtype: str | None = None,
        value_range: tuple[float, float] | None = None,
        interpolation: str = "bilinear",
        crop_to_aspect_ratio: bool = False,
        augment: ImageAugmentation | None = None,
        on_error: OnError = "raise",
        num_threads: int | None = None,
        rows: Any = None,
        column: str | None = None,
        cache: str | os.PathLike[str] | None = None,
        cache_validation: CacheValidation = "run",
    ) -> None:
        pillow()  # an ImportError naming the extra, before anything else
        check_choice(cache_validation, "cache_validation", CACHE_VALIDATIONS)
        self.cache_validation = cache_validation
        self._keys_epoch: int | None = None
        check_choice(color_mode, "color_mode", ("rgb", "grayscale", "rgba"))
        check_choice(interpolation, "interpolation", INTERPOLATIONS)
        self.count = count
        self.decoder = ImageDecoder(
            check_size(size), color_mode, interpolation, bool(crop_to_aspect_ratio)
        )
        if dtype is None:
            import keras

            dtype = keras.config.floatx()
        self._dtype = np.dtype(dtype)
        if self._dtype.kind != "f" and self._dtype != np.uint8:
            raise ValueError(
                f"dtype must be None (keras.config.floatx(), values in [0, 1]), a float "
                f"dtype, or 'uint8' (values 0-255); got dtype={dtype!r}."
            )
        self.value_range = check_value_range(value_range, self._dtype)
        low, high = self.value_range
        self._scale = self._dtype.type((high - low) / 255)
        self._offset = self._dtype.type(low)
        self.augment = augment
        self.on_error = check_on_error(on_error)
        self.num_threads = None if num_threads is None else check_int(num_threads, "num_threads")
        self.rows = check_rows(rows, count, type(self).__name__)
        self.column = column
        self._keys: np.ndarray | None = None
        self.cache = (
            None
            if cache is None
            else DecodedCache(cache, self._fingerprint(), count, self.decoder.shape)
        )

    # ------------------------------------------------------------------ what subclasses say

    @abc.abstractmethod
    def read(self, sample: int) -> bytes:
        """The encoded bytes of ``sample``'s image.

        Raises:
            OSError, ValueError: When they cannot be read; `explain` words the message.
        """

    def read_many(
        self, samples: Sequence[int], requests: Requests | None = None
    ) -> list[bytes | Exception] | None:
        """The encoded bytes of many samples fetched together, each failure in its place,
        for storage where a request's latency dominates (remote storage); None (the
        default) reads each sample with `read` in the decoding threads."""
        return None

    @abc.abstractmethod
    def where(self, sample: int) -> str:
        """Names ``sample``'s image in messages, e.g. ``image file 'a.jpg'``."""

    def identity(self, sample: int) -> bytes:
        """What identifies ``sample``'s encoded image for the cache: by default its bytes
        (a subclass with a cheaper identity that changes whenever they do overrides it:
        where it is stored, as a file's or object's identity and the offset in it).

        Raises:
            OSError, ValueError: When it cannot be read (the sample is then not cached).
        """
        return b"bytes\0" + self.read(sample)

    def reads_remotely(self) -> bool:
        return self._remote

    def speedup_hint(self) -> str | None:
        if self.cache is None:
            return "cache='DIR' (each image decoded once, then read from disk)"
        return None

    # ------------------------------------------------------------------------- the source

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, *self.decoder.shape)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of every image."""
        return self.decoder.size

    @property
    def color_mode(self) -> ColorMode:
        return self.decoder.color_mode

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    def gather(self, indices: np.ndarray, context: GatherContext) -> np.ndarray:
        """Reads and decodes the images of ``indices`` in parallel into one batch (with a
        cache: only those not cached yet, which are then cached)."""
        batch = self._decoded(
            indices,
            lambda sample, why: self.bad_sample(context, sample, why),
            context.epoch,
            context.executor,
            context.threads,
            context.requests,
        )
        if self.augment is not None:
            batch = self.augment.apply(batch, indices, context.seed, context.epoch)
        if self._dtype == np.uint8:
            return batch
        scaled: np.ndarray = np.multiply(batch, self._scale, dtype=self._dtype)
        if self._offset:
            scaled += self._offset
        return scaled

    def fill_cache(
        self, indices: np.ndarray, executor: Executor | None = None, threads: int = 1
    ) -> list[tuple[int, str]]:
        """Decodes into the cache the images of ``indices`` it does not hold yet (no
        augmentation, no scaling), in ``executor``'s ``threads`` threads (None: in this
        one); returns ``(sample, what was wrong)`` for each image that could not be
        decoded, whatever ``on_error`` says.

        Raises:
            ValueError: If the source has no cache.
        """
        if self.cache is None:
            raise ValueError(f"{type(self).__name__} has no cache to fill: pass cache='DIR'.")
        failed: list[tuple[int, str]] = []
        self._decoded(
            np.asarray(indices),
            lambda sample, why: failed.append((sample, why)),
            None,
            executor,
            threads,
        )
        return failed

    def uncached(self, indices: np.ndarray | None = None) -> np.ndarray:
        """The samples of ``indices`` (None: all) whose images the cache does not hold
        (for their current originals: each one's identity is taken, see `identity`).

        Raises:
            ValueError: If the source has no cache.
        """
        if self.cache is None:
            raise ValueError(f"{type(self).__name__} has no cache: pass cache='DIR'.")
        samples = np.arange(self.count) if indices is None else np.asarray(indices, np.int64)
        uncached: np.ndarray = samples[self.cache.missing(samples, self._cache_keys(samples))]
        return uncached

    def _decoded(
        self,
        indices: np.ndarray,
        bad: Callable[[int, str], None],
        epoch: int | None,
        executor: Executor | None,
        threads: int,
        requests: Requests | None = None,
    ) -> np.ndarray:
        """The ``uint8`` images of ``indices``: cached ones copied, the others read and
        decoded in ``executor``'s threads, each taking a share of the batch (then
        cached); ``bad(sample, why)`` is called for each image that cannot be read or
        decoded, left zero."""
        batch = np.zeros((len(indices), *self.shape[1:]), dtype=np.uint8)
        cache, keys = self.cache, None
        pending = list(range(len(indices)))
        if cache is not None:
            keys = self._cache_keys(indices, epoch)
            pending = np.flatnonzero(~cache.fetch(indices, keys, batch)).tolist()
        fetched = self.read_many([int(indices[k]) for k in pending], requests) if pending else None

        def load(positions: range) -> None:
            for j in positions:
                k = pending[j]
                sample = int(indices[k])
                try:
                    if fetched is None:
                        batch[k] = self.load(sample)
                    else:
                        data = fetched[j]
                        if isinstance(data, Exception):
                            raise data
                        batch[k] = self.decoder.decode(data)
                except Exception as error:  # every failure names the image and the sample
                    bad(sample, self.explain(error, sample))
                    continue
                if cache is not None and keys is not None and keys[k]:
                    cache.store(sample, int(keys[k]), batch[k])

        if executor is None:
            threads = 1
        threads = min(threads if self.num_threads is None else self.num_threads, len(pending))
        if executor is None or threads < 2:
            load(range(len(pending)))
        else:
            # One contiguous share of the batch per thread (one task each, not one per
            # image); list() re-raises the first error of any thread in the caller's thread.
            shares = [range(t, len(pending), threads) for t in range(threads)]
            list(executor.map(load, shares))
        if cache is not None:
            cache.report_damaged()
        return batch

    def _cache_keys(self, indices: np.ndarray, epoch: int | None = None) -> np.ndarray:
        """The cache key of each sample of ``indices`` (0 where its identity cannot be
        taken: not cached; decoding it then reports the problem), each taken once per
        process (``cache_validation="run"``), once per epoch (``"epoch"``), or, with
        ``"trust"``, the key a filled record was stored for (the original untouched)."""
        assert self.cache is not None
        if self.cache_validation == "epoch" and epoch is not None and epoch != self._keys_epoch:
            self._keys, self._keys_epoch = None, epoch
        if self._keys is None:
            self._keys = np.zeros(self.count, np.uint64)
        known = self._keys
        if self.cache_validation == "trust":
            unknown = indices[known[indices] == 0]
            known[unknown] = self.cache.stored(unknown)
        for sample in indices[known[indices] == 0]:
            try:
                known[sample] = identity_key(self.identity(int(sample)))
            except Exception:
                continue
        keys: np.ndarray = known[indices]
        return keys

    def _fingerprint(self) -> dict[str, Any]:
        """What a cached image depends on besides its encoded input."""
        from importlib import metadata

        versions: dict[str, str | None] = {}
        for package in ("pillow", "simplejpeg"):
            try:
                versions[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                versions[package] = None
        return {
            "kind": "images",
            "source": type(self).__name__,
            "size": list(self.decoder.size),
            "color_mode": self.decoder.color_mode,
            "interpolation": self.decoder.interpolation,
            "crop_to_aspect_ratio": self.decoder.crop_to_aspect_ratio,
            "decoders": versions,
        }

    def load(self, sample: int) -> np.ndarray:
        """Reads and decodes one image to ``uint8`` ``size + (channels,)``.

        Raises:
            OSError, ValueError: As raised by the storage or the decoder.
        """
        return self.decoder.decode(self.read(sample))

    def explain(self, error: Exception, sample: int) -> str:
        """What went wrong with ``sample``'s image, naming it, for a `SampleError`."""
        return explain(error, self.where(sample))


def check_size(size: Any) -> tuple[int, int]:
    """``(height, width)`` as two positive ints, or a ValueError saying what a size is."""
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in size)
        or min(size) < 1
    ):
        raise ValueError(
            f"size must be (height, width) in pixels, two positive integers; got {size!r}."
        )
    return int(size[0]), int(size[1])
