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
connect and a read timeout (`CONNECT_TIMEOUT_S`, `READ_TIMEOUT_S`), so a server that
accepts a request and never answers is such a failure, not a hang. A failure that retrying
cannot fix (no such object or bucket, permission refused, no credentials) is raised at
once, saying what to change. The protocol's own retry loops are turned off for S3 so
that the count in the message is the count made.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from multimodal_dataset.files import FileTooLargeError, is_inside
from multimodal_dataset.optional import EXTRAS, optional_import
from multimodal_dataset.picklable import Picklable

#: Requests in flight at once, per batch.
MAX_REQUESTS = 64
#: Retries of a transient failure (so ``1 + RETRIES`` attempts), waiting
#: ``BACKOFF_S * 2**k`` seconds before retry ``k``.
RETRIES = 3
BACKOFF_S = 0.2
#: Seconds an HTTP(S) request may take to connect, and to wait for each read, before it
#: fails as a transient error (retried). Set your own with
#: ``storage_options={"client_kwargs": {"timeout": aiohttp.ClientTimeout(...)}}``.
#: S3 has s3fs's own (``connect_timeout``, ``read_timeout``).
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]+)://")
#: The extra that installs each protocol's file system.
_BUCKET_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "memory", "az", "abfs", "abfss")
_PROTOCOL_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}


class StorageError(OSError):
    """A read from remote storage failed; the message names the URL and what to do."""


class MissingBucketError(StorageError, FileNotFoundError):
    """The bucket of a URL does not exist (or the credentials cannot see it)."""


class CredentialsError(StorageError, PermissionError):
    """No credentials were found for a URL's storage."""


class RetriesExhaustedError(StorageError, ConnectionError):
    """A transient failure outlasted every retry."""


def protocol_of(path: str) -> str | None:
    """The protocol of a URL (``"s3"``), or None for a plain path."""
    match = _URL.match(path)
    return match.group(1).lower() if match else None


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL (``scheme://...``), local ``file://`` included."""
    return protocol_of(path) is not None


def is_remote(path: str) -> bool:
    """Whether ``path`` is read through fsspec: a URL other than ``file://``."""
    return protocol_of(path) not in (None, "file", "local")


def local_path(path: str) -> str:
    """``path`` without a ``file://`` prefix (other paths unchanged)."""
    if protocol_of(path) in ("file", "local"):
        return path.split("://", 1)[1]
    return path


def join(folder: str, path: str) -> str:
    """``path`` relative to ``folder`` (a URL or a local folder); URLs and absolute paths
    are returned as they are."""
    if is_url(path):
        return path
    if is_remote(folder):
        if path.startswith("/"):
            return path
        return posixpath.join(folder, path)
    return os.path.join(folder, path)


def parent(path: str) -> str:
    """The folder of a URL or a local path (a local path is made absolute)."""
    if is_remote(path):
        return posixpath.dirname(path.rstrip("/"))
    return os.path.dirname(os.path.abspath(local_path(path)))


def absolute(path: str) -> str:
    """A URL as it is; a local path (or ``file://`` URL) made absolute."""
    return path if is_remote(path) else os.path.abspath(local_path(path))


def inside(given: str, joined: str, root: str) -> bool:
    """Whether the path ``given`` (``joined`` to ``root``) stays inside ``root``: a URL
    root, or a local folder (see `files.is_inside`). A URL is never inside a local root."""
    if is_url(given) or is_remote(root):
        return is_inside_url(given, joined, root)
    return is_inside(given, joined, root)


def is_inside_url(given: str, joined: str, root: str) -> bool:
    """Whether ``given`` (``joined`` to the URL ``root``) stays inside ``root``,
    lexically: ``..`` may not climb out of it."""
    if not is_url(given) and not given.startswith("/") and ".." not in given:
        return True
    if protocol_of(joined) != protocol_of(root):
        return False
    scheme = f"{protocol_of(root)}://"
    full = posixpath.normpath(joined[len(scheme) :])
    base = posixpath.normpath(root[len(scheme) :])
    return full == base or full.startswith(base.rstrip("/") + "/")


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
                    system = self._systems[key] = self._make(protocol, url)
        return system

    def _make(self, protocol: str, url: str) -> Any:
        fsspec = optional_import("fsspec", f"Reading {url!r}")
        options = dict(self.storage_options)
        if protocol in ("http", "https"):
            client = dict(options.get("client_kwargs") or {})
            if "timeout" not in client:
                aiohttp = optional_import("aiohttp", f"Reading {url!r}")
                client["timeout"] = aiohttp.ClientTimeout(
                    total=None,
                    connect=CONNECT_TIMEOUT_S,
                    sock_connect=CONNECT_TIMEOUT_S,
                    sock_read=READ_TIMEOUT_S,
                )
            options["client_kwargs"] = client
        if protocol in ("s3", "s3a"):
            # Our retries, not botocore's and s3fs's (whose counts a message cannot name),
            # and a connection per request in flight.
            config = dict(options.get("config_kwargs") or {})
            config.setdefault("retries", {"max_attempts": 1})
            config.setdefault("max_pool_connections", self.max_requests)
            options["config_kwargs"] = config
        try:
            system = fsspec.filesystem(protocol, skip_instance_cache=True, **options)
        except ImportError:
            package = _PROTOCOL_PACKAGES.get(protocol, "the fsspec implementation")
            extra = EXTRAS.get(package, ("remote", package))[0]
            raise ImportError(
                f"Reading {url!r} needs {package}, which is not installed. Install it with "
                f"`pip install 'multimodal-dataset[{extra}]'` (or `pip install {package}`)."
            ) from None
        except ValueError as error:
            raise ValueError(
                f"Cannot read {url!r}: fsspec has no file system for {protocol!r} "
                f"({error}). Check the URL's scheme."
            ) from None
        except TypeError as error:
            raise TypeError(
                f"Cannot read {url!r}: storage_options does not suit the {protocol!r} file "
                f"system ({error}). Pass the options its fsspec implementation takes."
            ) from None
        if hasattr(system, "retries") and protocol in ("s3", "s3a"):
            system.retries = 1
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

    def read_many(self, urls: Sequence[str], max_bytes: int) -> list[bytes | Exception]:
        """The bytes of each of ``urls``, read concurrently; a failure is returned in its
        place (never raised), already worded (see `read`)."""
        results = self.read_ranges(urls, [0] * len(urls), [max_bytes + 1] * len(urls))
        for i, result in enumerate(results):
            if isinstance(result, bytes) and len(result) > max_bytes:
                results[i] = FileTooLargeError(
                    f"{urls[i]!r} has more than max_file_bytes={max_bytes:,} bytes; pass a "
                    "larger max_file_bytes if it is a real file"
                )
        return results

    def read_ranges(
        self, urls: Sequence[str], starts: Sequence[int], ends: Sequence[int]
    ) -> list[bytes | Exception]:
        """Bytes ``starts[i]:ends[i]`` of each of ``urls`` (fewer at the object's end),
        read concurrently with retries; a failure is returned in its place."""
        results: list[bytes | Exception] = [b""] * len(urls)
        todo = list(range(len(urls)))
        attempt = 0
        while todo:
            attempt += 1
            got = self._fetch(
                [urls[i] for i in todo], [starts[i] for i in todo], [ends[i] for i in todo]
            )
            again = []
            for i, value in zip(todo, got, strict=True):
                value = _real_error(value)
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
                elif _permanent(value) or attempt > self.retries:
                    results[i] = self.explain(urls[i], value, attempt)
                else:
                    again.append(i)
            if again:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            todo = again
        return results

    def _fetch(
        self, urls: list[str], starts: list[int], ends: list[int]
    ) -> list[bytes | BaseException]:
        """One attempt at every range, grouped by file system."""
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
                        paths, first, last, batch_size=self.max_requests, on_error="return"
                    )
                else:
                    got = self._threaded(system, paths, first, last)
            except Exception as error:  # the whole call failed (e.g. no credentials)
                got = [error] * len(members)
            for i, value in zip(members, got, strict=True):
                out[i] = _empty_object(system, urls[i], starts[i], value)
        return out

    def _threaded(
        self, system: Any, paths: list[str], starts: list[int], ends: list[int]
    ) -> list[bytes | BaseException]:
        def one(k: int) -> bytes | BaseException:
            try:
                data: bytes = system.cat_file(paths[k], starts[k], ends[k])
                return data
            except Exception as error:
                return error

        if len(paths) == 1:
            return [one(0)]
        return list(self._pool().map(one, range(len(paths))))

    def _pool(self) -> ThreadPoolExecutor:
        pid = os.getpid()
        with self._lock:
            pool = self._pools.get(pid)
            if pool is None:
                pool = self._pools[pid] = ThreadPoolExecutor(
                    min(self.max_requests, 32), "multimodal_dataset_storage"
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
                error = _real_error(raised)
                if _permanent(error) or attempt > self.retries:
                    raise self.explain(url, error, attempt) from error
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))

    def retrying(self, url: str, call: Callable[[], Any]) -> Any:
        """``call()``, which reads ``url``, retried as every read is (a transient failure
        up to `RETRIES` more times) and its final error worded as `read`'s."""
        return self._call(url, lambda _: call())

    def explain(self, url: str, error: BaseException, attempts: int) -> Exception:
        """``error`` as an exception that names ``url`` and says what to do."""
        name = type(error).__name__
        text = str(error) or name
        if isinstance(error, (StorageError, FileTooLargeError)):
            return error
        if "credential" in name.lower() or name in ("NoAuthTokenError",):
            return CredentialsError(
                f"{url!r} cannot be read: no credentials were found ({text}). Pass them "
                "with storage_options (for S3: {'key': ..., 'secret': ...}, or "
                "{'anon': True} for a public bucket; for GCS: {'token': ...}), or set the "
                "provider's environment variables (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS)"
            )
        if isinstance(error, FileNotFoundError):
            if "bucket" in text.lower():
                bucket = url.split("://", 1)[-1].split("/", 1)[0]
                where = self.storage_options.get("endpoint_url") or (
                    self.storage_options.get("client_kwargs") or {}
                ).get("endpoint_url")
                at = f" at {where}" if where else ""
                return MissingBucketError(
                    f"{url!r} cannot be read: the bucket {bucket!r} does not exist{at} "
                    f"({text}). Check the bucket name in the URL, and endpoint_url in "
                    "storage_options for a store other than AWS"
                )
            return FileNotFoundError(errno.ENOENT, f"{url!r} does not exist")
        if isinstance(error, PermissionError):
            return PermissionError(
                errno.EACCES,
                f"{url!r} cannot be read: permission denied ({text}); check the "
                "credentials in storage_options",
            )
        if _permanent(error):
            return error  # type: ignore[return-value]
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        return RetriesExhaustedError(
            f"{url!r} could not be read after {tries} ({name}: {text}). Check that the "
            "store is reachable (endpoint_url in storage_options) and retry"
        )


class RangeNotSupportedError(StorageError):
    """The server answered a range request with the whole object."""


def _real_error(value: Any) -> Any:
    """The failure behind fsspec's HTTP ``info``, which raises every one (a server error,
    a refused connection, a timeout) as ``FileNotFoundError(url)`` with the real one as
    its cause: only a 404 or 410 means the object does not exist."""
    if type(value) is not FileNotFoundError or value.__cause__ is None:
        return value
    cause = value.__cause__
    status = getattr(cause, "status", None)
    from_http = status is not None or type(cause).__module__.startswith("aiohttp")
    if not (from_http or isinstance(cause, (ConnectionError, TimeoutError))):
        return value  # e.g. memory://'s KeyError: the object is missing
    if status in (404, 410):
        return value
    if status in (401, 403):
        return PermissionError(errno.EACCES, f"HTTP {status}: {getattr(cause, 'message', cause)}")
    return cause


def _empty_object(system: Any, url: str, start: int, value: Any) -> Any:
    """S3 refuses a range of an empty object ("range not satisfiable"): that is b""."""
    if (
        start == 0
        and isinstance(value, OSError)
        and not isinstance(value, FileNotFoundError)
        and ("not satisfiable" in str(value).lower() or "invalidrange" in str(value).lower())
    ):
        try:
            if int(system.info(url).get("size") or 0) == 0:
                return b""
        except Exception:
            return value
    return value


def _permanent(error: BaseException) -> bool:
    """Whether retrying cannot help: a missing object, a refused permission, missing
    credentials, a bad argument."""
    name = type(error).__name__
    if isinstance(
        error,
        (
            FileNotFoundError,
            PermissionError,
            IsADirectoryError,
            NotADirectoryError,
            FileTooLargeError,
            ValueError,
            TypeError,
            NotImplementedError,
            ImportError,
        ),
    ):
        return True
    if "credential" in name.lower() or name in ("NoAuthTokenError", "ParamValidationError"):
        return True
    return isinstance(error, OSError) and error.errno in (errno.EINVAL, errno.EACCES)
