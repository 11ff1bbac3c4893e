"""The errors of remote storage, and how a file system's raw failure is read: the real
cause behind fsspec's HTTP ``FileNotFoundError``, an empty object's refused range, and
which failures retrying cannot fix."""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Any

from multimodal_dataset.io.files import FileTooLargeError


class StorageError(OSError):
    """A read from remote storage failed; the message names the URL and what to do."""


class MissingBucketError(StorageError, FileNotFoundError):
    """The bucket of a URL does not exist (or the credentials cannot see it)."""


class CredentialsError(StorageError, PermissionError):
    """No credentials were found for a URL's storage."""


class RetriesExhaustedError(StorageError, ConnectionError):
    """A transient failure outlasted every retry."""


class RangeNotSupportedError(StorageError):
    """The server answered a range request with the whole object."""


def real_error(value: Any) -> Any:
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


def empty_object(system: Any, url: str, start: int, value: Any) -> Any:
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


def is_permanent(error: BaseException) -> bool:
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


def explain(
    url: str, error: BaseException, attempts: int, storage_options: Mapping[str, Any]
) -> Exception:
    """``error`` (after ``attempts`` attempts) as an exception that names ``url`` and says
    what to do; ``storage_options`` name the endpoint of a missing bucket."""
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
            where = storage_options.get("endpoint_url") or (
                storage_options.get("client_kwargs") or {}
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
    if is_permanent(error):
        return error  # type: ignore[return-value]
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    return RetriesExhaustedError(
        f"{url!r} could not be read after {tries} ({name}: {text}). Check that the "
        "store is reachable (endpoint_url in storage_options) and retry"
    )
