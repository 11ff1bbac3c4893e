"""Making the fsspec file system of a protocol: imported when first needed, with the
options the user gave, our timeouts on every HTTP request and our retries on S3."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multimodal_dataset._utils.optional import EXTRAS, optional_import

#: Seconds an HTTP(S) request may take to connect, and to wait for each read, before it
#: fails as a transient error (retried). Set your own with
#: ``storage_options={"client_kwargs": {"timeout": aiohttp.ClientTimeout(...)}}``.
#: S3 has s3fs's own (``connect_timeout``, ``read_timeout``).
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
#: The package that installs each protocol's file system.
_PROTOCOL_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}


def make_filesystem(
    protocol: str, url: str, storage_options: Mapping[str, Any], max_requests: int
) -> Any:
    """The fsspec file system of ``protocol`` with ``storage_options``, with our timeouts
    (HTTP) and retries (S3: theirs off, a connection per request in flight).

    Raises:
        ImportError: Naming the extra to install for the protocol's file system.
        ValueError, TypeError: For an unknown scheme or options it does not take.
    """
    fsspec = optional_import("fsspec", f"Reading {url!r}")
    options = dict(storage_options)
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
        config.setdefault("max_pool_connections", max_requests)
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
