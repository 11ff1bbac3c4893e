"""Remote storage: any path the library reads may be an fsspec URL (``s3://``, ``gs://``,
``http(s)://``, ``memory://``, ``file://``).

A URL is read through the fsspec file system of its protocol, imported when first needed
(``pip install "multimodal-dataset[s3]"``), with ``storage_options`` passed to it as pandas
does. ``file://`` URLs are local paths and are read as local files are.

Latency is hidden by reading a batch's objects together: up to `MAX_REQUESTS` requests
in flight, each slot refilled as soon as its request ends, so one slow request holds one
slot, not the batch's others. A transient failure (a refused or dropped connection, a
timeout, a server error) is retried up to `RETRIES` more times with exponential backoff,
and the final error names the URL and the number of attempts; every HTTP request has a
connect and a read timeout (`filesystems.CONNECT_TIMEOUT_S`, `READ_TIMEOUT_S`), so a server that
accepts a request and never answers is such a failure, not a hang. A failure that retrying
cannot fix (no such object or bucket, permission refused, no credentials) is raised at
once, saying what to change. The protocol's own retry loops are turned off for S3 so
that the count in the message is the count made.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, ClassVar

from multimodal_dataset._utils.picklable import Picklable
from multimodal_dataset.io.files import FileTooLargeError
from multimodal_dataset.io.filesystems import make_filesystem
from multimodal_dataset.io.storage_errors import (
    RangeNotSupportedError,
    empty_object,
    explain,
    is_permanent,
    real_error,
)
from multimodal_dataset.io.urls import is_url, protocol_of

#: Requests in flight at once, per batch.
MAX_REQUESTS = 64
#: Threads carrying one process's requests at most, on a file system without an event
#: loop of its own (S3, GCS and HTTP keep their requests in fsspec's loop).
MAX_IO_THREADS = 32
#: Retries of a transient failure (so ``1 + RETRIES`` attempts), waiting
#: ``BACKOFF_S * 2**k`` seconds before retry ``k``.
RETRIES = 3
BACKOFF_S = 0.2

_BUCKET_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "memory", "az", "abfs", "abfss")


@dataclasses.dataclass(frozen=True)
class Requests:
    """How a batch's reads run, given by whoever owns the threads (the dataset's
    `Gatherer`): at most ``in_flight`` requests at once, in ``executor``'s threads for a
    file system without its own event loop (S3, GCS and HTTP keep theirs in fsspec's
    loop). None of them: the storage's own pool, `MAX_REQUESTS` in flight."""

    executor: Executor | None = None
    in_flight: int = MAX_REQUESTS


class Storage(Picklable):
    """The fsspec file systems that URLs are read through, one per protocol.

    Pickles as its options: each process makes its own file systems (an async file
    system's event loop does not survive a fork).

    Args:
        storage_options: Passed to each protocol's file system, e.g. ``{"key": ...,
            "secret": ..., "endpoint_url": ...}`` for S3 or ``{"token": ...}`` for GCS.
        retries: Retries of a transient failure.
        max_requests: Requests in flight at once.
    """

    TRANSIENT: ClassVar[dict[str, Callable[[], Any]]] = {
        "_systems": dict,
        "_pools": dict,
        "_lock": threading.Lock,
    }

    def __init__(
        self,
        storage_options: Mapping[str, Any] | None = None,
        retries: int = RETRIES,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        if storage_options is not None and not isinstance(storage_options, Mapping):
            raise TypeError(
                "storage_options must be a dict of options for the file system, e.g. "
                "{'key': ..., 'secret': ...} for S3; got "
                f"{type(storage_options).__name__}."
            )
        self.storage_options = dict(storage_options or {})
        self.retries = retries
        self.max_requests = max_requests
        self._systems: dict[tuple[int, str], Any] = {}
        self._pools: dict[int, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Storage(storage_options with keys {sorted(self.storage_options)})"

    # ---------------------------------------------------------------------- file systems

    def filesystem(self, url: str) -> Any:
        """The fsspec file system that reads ``url`` (made once per process)."""
        protocol = protocol_of(url) or "file"
        key = (os.getpid(), protocol)
        system = self._systems.get(key)
        if system is None:
            with self._lock:
                system = self._systems.get(key)
                if system is None:
                    system = self._systems[key] = make_filesystem(
                        protocol, url, self.storage_options, self.max_requests
                    )
        return system

    # ------------------------------------------------------------------------- reading

    def read(self, url: str, max_bytes: int) -> bytes:
        """The bytes of the object ``url``, refused past ``max_bytes``.

        Raises:
            FileNotFoundError, PermissionError, FileTooLargeError, StorageError: Naming
                the URL.
        """
        result = self.read_many([url], max_bytes)[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def read_many(
        self, urls: Sequence[str], max_bytes: int, requests: Requests | None = None
    ) -> list[bytes | Exception]:
        """The bytes of each of ``urls``, read concurrently (as ``requests`` says); a
        failure is returned in its place (never raised), already worded (see `read`)."""
        ends = [max_bytes + 1] * len(urls)
        results = self.read_ranges(urls, [0] * len(urls), ends, requests)
        for i, result in enumerate(results):
            if isinstance(result, bytes) and len(result) > max_bytes:
                results[i] = FileTooLargeError(
                    f"{urls[i]!r} has more than max_file_bytes={max_bytes:,} bytes; pass a "
                    "larger max_file_bytes if it is a real file"
                )
        return results

    def read_ranges(
        self,
        urls: Sequence[str],
        starts: Sequence[int],
        ends: Sequence[int],
        requests: Requests | None = None,
    ) -> list[bytes | Exception]:
        """Bytes ``starts[i]:ends[i]`` of each of ``urls`` (fewer at the object's end),
        read concurrently (as ``requests`` says) with retries; a failure is returned in
        its place."""
        results: list[bytes | Exception] = [b""] * len(urls)
        todo = list(range(len(urls)))
        attempt = 0
        while todo:
            attempt += 1
            got = self._fetch(
                [urls[i] for i in todo],
                [starts[i] for i in todo],
                [ends[i] for i in todo],
                requests,
            )
            again = []
            for i, value in zip(todo, got, strict=True):
                value = real_error(value)
                if isinstance(value, bytes) and len(value) > ends[i] - starts[i]:
                    results[i] = RangeNotSupportedError(
                        f"{urls[i]!r}: the server answered a request for bytes "
                        f"{starts[i]:,}-{ends[i] - 1:,} with {len(value):,} bytes: it does "
                        "not support range requests (HTTP Range), which reading members "
                        "of a shard or a Parquet file needs. Serve the files from a server "
                        "or store that does (S3, GCS, nginx, Python's http.server), or "
                        "copy them to a local disk"
                    )
                elif not isinstance(value, BaseException):
                    results[i] = value
                elif is_permanent(value) or attempt > self.retries:
                    results[i] = explain(urls[i], value, attempt, self.storage_options)
                else:
                    again.append(i)
            if again:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            todo = again
        return results

    def _fetch(
        self, urls: list[str], starts: list[int], ends: list[int], requests: Requests | None
    ) -> list[bytes | BaseException]:
        """One attempt at every range, grouped by file system."""
        in_flight = self.max_requests if requests is None else requests.in_flight
        pool = None if requests is None else requests.executor
        out: list[bytes | BaseException] = [b""] * len(urls)
        groups: dict[str, list[int]] = {}
        for i, url in enumerate(urls):
            groups.setdefault(protocol_of(url) or "file", []).append(i)
        for members in groups.values():
            system = self.filesystem(urls[members[0]])
            paths = [urls[i] for i in members]
            first = [starts[i] for i in members]
            last = [ends[i] for i in members]
            try:
                if getattr(system, "async_impl", False):
                    got = system.cat_ranges(
                        paths, first, last, batch_size=in_flight, on_error="return"
                    )
                else:
                    got = self._threaded(system, paths, first, last, pool)
            except Exception as error:  # the whole call failed (e.g. no credentials)
                got = [error] * len(members)
            for i, value in zip(members, got, strict=True):
                out[i] = empty_object(system, urls[i], starts[i], value)
        return out

    def _threaded(
        self,
        system: Any,
        paths: list[str],
        starts: list[int],
        ends: list[int],
        pool: Executor | None,
    ) -> list[bytes | BaseException]:
        def one(k: int) -> bytes | BaseException:
            try:
                data: bytes = system.cat_file(paths[k], starts[k], ends[k])
                return data
            except Exception as error:
                return error

        if len(paths) == 1:
            return [one(0)]
        return list((pool or self._pool()).map(one, range(len(paths))))

    @property
    def threads(self) -> int:
        """The threads that keep this storage's requests in flight, in each process that
        reads through it."""
        return min(self.max_requests, MAX_IO_THREADS)

    def _pool(self) -> ThreadPoolExecutor:
        pid = os.getpid()
        with self._lock:
            pool = self._pools.get(pid)
            if pool is None:
                pool = self._pools[pid] = ThreadPoolExecutor(
                    self.threads, "multimodal_dataset_storage"
                )
            return pool

    # -------------------------------------------------------------------- about objects

    def info(self, url: str) -> dict[str, Any]:
        """fsspec's ``info`` of ``url`` (``size``, ``type``, and an ETag or modification
        time where the store has one), with retries; errors worded as `read`'s."""
        info: dict[str, Any] = self._call(url, lambda system: system.info(url))
        return info

    def identity(self, url: str) -> tuple[int, str]:
        """The object's size and version (ETag, generation, checksum or modification
        time; "" when the store gives none): what a cached file derived from it is keyed
        by (an object without a version is not cached across runs)."""
        info = self.info(url)
        if info.get("type") == "directory":
            raise IsADirectoryError(f"{url!r} is a folder, not an object")
        version = next(
            (
                str(info[k])
                for k in (
                    "ETag",
                    "etag",
                    "generation",
                    "Content-MD5",
                    "Digest",
                    "LastModified",
                    "Last-Modified",
                    "mtime",
                    "updated",
                    "created",
                )
                if info.get(k) is not None
            ),
            "",
        )
        return int(info.get("size") or 0), version

    def open(self, url: str, block_size: int | None = None) -> Any:
        """A read-only file object of ``url`` that reads ahead ``block_size`` bytes."""
        system = self.filesystem(url)
        options: dict[str, Any] = {"cache_type": "readahead"}
        if block_size is not None:
            options["block_size"] = block_size
        return self._call(url, lambda _: system.open(url, "rb", **options))

    def write(self, url: str, data: bytes) -> None:
        """Writes ``data`` to the object ``url``."""
        self._call(url, lambda system: system.pipe_file(url, data))

    def glob(self, pattern: str) -> list[str]:
        """The URLs matching ``pattern``, sorted."""
        system = self.filesystem(pattern)
        found = self._call(pattern, lambda _: system.glob(pattern))
        return sorted(self._url_of(system, pattern, p) for p in found)

    def list_files(self, url: str) -> list[str] | None:
        """The objects directly inside the folder ``url``, sorted, or None when ``url``
        is not a folder."""
        system = self.filesystem(url)
        try:
            if not self._call(url, lambda _: system.isdir(url)):
                return None
            entries = self._call(url, lambda _: system.ls(url, detail=True))
        except FileNotFoundError:
            return None
        return sorted(
            self._url_of(system, url, e["name"]) for e in entries if e.get("type") == "file"
        )

    @staticmethod
    def _url_of(system: Any, like: str, path: str) -> str:
        """A path fsspec returned (without its protocol) as a URL like ``like``."""
        if is_url(path):
            return path
        protocol = protocol_of(like) or "file"
        if protocol in _BUCKET_PROTOCOLS:
            return f"{protocol}://{path.lstrip('/')}"
        url: str = system.unstrip_protocol(path)
        return url

    def _call(self, url: str, call: Callable[[Any], Any]) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return call(self.filesystem(url))
            except Exception as raised:
                error = real_error(raised)
                if is_permanent(error) or attempt > self.retries:
                    raise explain(url, error, attempt, self.storage_options) from error
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))

    def retrying(self, url: str, call: Callable[[], Any]) -> Any:
        """``call()``, which reads ``url``, retried as every read is (a transient failure
        up to `RETRIES` more times) and its final error worded as `read`'s."""
        return self._call(url, lambda _: call())
