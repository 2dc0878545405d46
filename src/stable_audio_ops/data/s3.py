"""S3 access for WebDataset shards through boto3: listing, streaming with retries, clear errors.

Upstream shells out to the ``aws`` CLI (``aws s3 ls`` to list, ``pipe:aws s3 cp ... -`` to stream), so
it needs the CLI binary on PATH, cannot be pointed at an S3-compatible store except through CLI
config, and a network hiccup kills a shard silently (its handler prints and skips it). Here:

* **Credentials and endpoint** come from boto3's standard chain (env vars, shared config/credentials
  files, ``profile``, instance roles). The endpoint is, in order: the config key ``endpoint_url``,
  ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (read by boto3 itself), or the profile's
  ``endpoint_url``; so MinIO, Ceph, R2 or a local moto server work without code changes.
* **Transient failures** (connection refused/reset, timeouts, truncated bodies, HTTP 5xx, throttling)
  are retried with exponential backoff and jitter (:class:`RetryPolicy`). botocore's own retries are
  switched off so there is one retry policy, with one log line per retry.
* **Mid-stream failures** resume: :class:`RetryingS3Reader` remembers how many bytes it delivered and
  re-requests the rest with an HTTP ``Range`` (pinned to the object's ETag, so a replaced object is
  detected instead of being spliced).
* **Permanent failures** raise a :class:`S3Error` (a :class:`~stable_audio_ops.errors.DatasetError`)
  naming the bucket, key or prefix and the endpoint: missing bucket/key, access denied, no
  credentials, no shards, or a store that stays unreachable after all retries.

Every exception class here takes a single message argument, so torch DataLoader workers can re-raise
them in the main process unchanged.
"""

from __future__ import annotations

import io
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stable_audio_ops.errors import DatasetError

log = logging.getLogger(__name__)

T = TypeVar("T")

SHARD_SUFFIX = ".tar"

# Error codes S3 (and compatible stores) use for "try again later".
TRANSIENT_ERROR_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "BandwidthLimitExceeded",
        "500",
        "502",
        "503",
        "504",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "NotFound", "404"})
DENIED_CODES = frozenset(
    {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "ExpiredToken"}
)


class S3Error(DatasetError):
    """An S3 operation failed for good (the message names the bucket/key and the endpoint).

    ``str()`` is the original message even after webdataset's tar iterators append context to
    ``args`` (they do so for every exception passing through them).
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class S3NotFoundError(S3Error):
    """The bucket, key or prefix does not exist (or holds no shards)."""


class S3PermissionError(S3Error):
    """Credentials are missing or not allowed to do this."""


class S3UnavailableError(S3Error):
    """The store kept failing with transient errors until the retry budget ran out."""


# ----------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: delay_k = min(max_delay, base_delay * 2**k), half of it random.

    The defaults ride out a few seconds of outage (a store restart, a throttling burst): six attempts
    wait about 0.5 + 1 + 2 + 4 + 8 s at most in total.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, retry_index: int) -> float:
        full = min(self.max_delay, self.base_delay * (2**retry_index))
        return full / 2 + random.uniform(0, full / 2)


@dataclass(frozen=True)
class S3Settings:
    """How to reach a store. Picklable (no client inside), so it travels to DataLoader workers.

    ``endpoint_url``/``profile``/``region`` of None defer to boto3's own resolution (env vars,
    ``~/.aws/config``). Timeouts are per request, in seconds.
    """

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_config(cls, node: dict[str, Any] | None = None, **overrides: Any) -> S3Settings:
        """Settings from a config dict with keys ``endpoint_url``, ``profile``, ``region`` and an optional
        ``s3_retry`` object (``max_attempts``, ``base_delay``, ``max_delay``); keyword overrides win."""
        node = dict(node or {})
        node.update({k: v for k, v in overrides.items() if v is not None})
        retry = RetryPolicy(**(node.get("s3_retry") or {}))
        return cls(
            endpoint_url=node.get("endpoint_url") or None,
            profile=node.get("profile") or None,
            region=node.get("region") or None,
            connect_timeout=float(node.get("connect_timeout", 10.0)),
            read_timeout=float(node.get("read_timeout", 60.0)),
            retry=retry,
        )


# ------------------------------------------------------------------------------------------ clients
_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()
# Environment variables that change what a client resolves to; part of the cache key.
_CLIENT_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


def make_s3_client(settings: S3Settings | None = None):
    """A boto3 S3 client for ``settings`` (cached per process: creating one costs tens of ms).

    The cache is keyed by process id (forked DataLoader workers build their own client instead of
    sharing the parent's connection pool) and by the AWS environment variables, so a changed
    endpoint or credential is picked up.
    """
    settings = settings or S3Settings()
    key = (os.getpid(), settings, tuple(os.environ.get(name) for name in _CLIENT_ENV))
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is not None:
            return client
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ProfileNotFound

        try:
            session = boto3.session.Session(profile_name=settings.profile)
        except ProfileNotFound as exc:
            raise S3PermissionError(
                f"AWS profile {settings.profile!r} not found in the AWS config/credentials files: {exc}"
            ) from exc
        region = settings.region or session.region_name or "us-east-1"
        config = Config(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},  # our RetryPolicy does the retrying
        )
        client = session.client("s3", endpoint_url=settings.endpoint_url, region_name=region, config=config)
        _CLIENTS[key] = client
        return client


def endpoint_of(settings: S3Settings | None = None) -> str:
    """The endpoint URL requests actually go to (for error messages)."""
    try:
        return str(make_s3_client(settings).meta.endpoint_url)
    except S3Error:
        return (settings.endpoint_url if settings else None) or "<default AWS endpoint>"


# ------------------------------------------------------------------------------------------- urls
def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``; raises ValueError for other schemes."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    rest = url[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"S3 URL without a bucket name: {url!r}")
    return bucket, key


def is_s3_url(url: str) -> bool:
    return isinstance(url, str) and url.startswith("s3://")


# ---------------------------------------------------------------------------------- classification
def _error_code(exc: BaseException) -> tuple[str, int]:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: connection problems, timeouts, truncated bodies, 5xx, throttling."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, IncompleteReadError
    from urllib3.exceptions import HTTPError as Urllib3HTTPError

    if isinstance(exc, ClientError):
        code, status = _error_code(exc)
        return code in TRANSIENT_ERROR_CODES or status >= 500 or status == 429
    transient_types = (
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
        Urllib3HTTPError,
        OSError,  # builtin ConnectionError/TimeoutError/socket errors
        _PrematureEnd,
    )
    return isinstance(exc, transient_types)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _permanent_error(exc: BaseException, what: str, endpoint: str) -> S3Error | None:
    """Translate a non-retryable boto error into a clear S3Error (None when it is not a boto error)."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return S3PermissionError(
            f"{what}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            f"AWS_PROFILE or a 'profile' in the dataset config) [endpoint {endpoint}]"
        )
    if isinstance(exc, ClientError):
        code, status = _error_code(exc)
        if code in NOT_FOUND_CODES or status == 404:
            return S3NotFoundError(f"{what}: not found ({code or status}) [endpoint {endpoint}]")
        if code in DENIED_CODES or status == 403:
            return S3PermissionError(
                f"{what}: access denied ({code or status}); check the credentials/profile [endpoint {endpoint}]"
            )
        return S3Error(f"{what}: {code or status}: {exc} [endpoint {endpoint}]")
    return None


def call_with_retries(fn: Callable[[], T], what: str, settings: S3Settings | None = None) -> T:
    """Run ``fn`` under ``settings.retry``; transient errors are retried, the rest become :class:`S3Error`.

    ``what`` says what is being done (e.g. ``"listing s3://b/prefix/"``) and starts every message.
    """
    settings = settings or S3Settings()
    policy = settings.retry
    started = time.monotonic()
    last: BaseException | None = None
    for attempt in range(max(1, policy.max_attempts)):
        try:
            return fn()
        except S3Error:
            raise
        except Exception as exc:
            if not is_transient(exc):
                error = _permanent_error(exc, what, endpoint_of(settings))
                if error is None:
                    raise
                raise error from exc
            last = exc
            if attempt + 1 >= policy.max_attempts:
                break
            delay = policy.delay(attempt)
            log.warning(
                "%s failed (attempt %d/%d: %s); retrying in %.2f s",
                what, attempt + 1, policy.max_attempts, _describe(exc), delay,
            )
            time.sleep(delay)
    elapsed = time.monotonic() - started
    raise S3UnavailableError(
        f"{what}: S3 endpoint {endpoint_of(settings)} still failing after {policy.max_attempts} attempts "
        f"over {elapsed:.1f} s (last error {_describe(last) if last else 'unknown'})"
    ) from last


# ---------------------------------------------------------------------------------------- listing
def _prefix_for(key: str) -> str:
    """``aws s3 ls <path>/ --recursive`` semantics: a path names a folder, so match below ``key/``."""
    return key.rstrip("/") + "/" if key else ""


def list_objects(s3_url: str, settings: S3Settings | None = None, page_size: int = 1000) -> list[tuple[str, int]]:
    """Every object (key, size) under the folder ``s3_url`` (recursive, paginated, retried per page)."""
    settings = settings or S3Settings()
    bucket, key = parse_s3_url(s3_url)
    prefix = _prefix_for(key)
    client = make_s3_client(settings)
    found: list[tuple[str, int]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
        if token:
            kwargs["ContinuationToken"] = token
        page = call_with_retries(
            lambda kw=kwargs: client.list_objects_v2(**kw), f"listing s3://{bucket}/{prefix}", settings
        )
        found.extend((obj["Key"], int(obj.get("Size", 0))) for obj in page.get("Contents", []))
        if not page.get("IsTruncated"):
            return found
        token = page.get("NextContinuationToken")


def list_shards(s3_url: str, settings: S3Settings | None = None, page_size: int = 1000) -> list[str]:
    """Sorted ``s3://`` URLs of the ``.tar`` shards under ``s3_url`` (recursive; nested prefixes included).

    ``s3_url`` may also name one ``.tar`` object. Raises :class:`S3NotFoundError` when the bucket does
    not exist or no shard is there (the message names the bucket, prefix and endpoint, and a few of
    the non-shard objects found, if any).
    """
    settings = settings or S3Settings()
    bucket, key = parse_s3_url(s3_url)
    if key.endswith(SHARD_SUFFIX):
        call_with_retries(
            lambda: make_s3_client(settings).head_object(Bucket=bucket, Key=key), f"reading {s3_url}", settings
        )
        return [s3_url]
    try:
        objects = list_objects(s3_url, settings, page_size)
    except S3NotFoundError as exc:
        raise S3NotFoundError(
            f"S3 bucket {bucket!r} does not exist (dataset path {s3_url}, endpoint {endpoint_of(settings)})"
        ) from exc
    shards = sorted(f"s3://{bucket}/{k}" for k, _ in objects if k.endswith(SHARD_SUFFIX))
    if not shards:
        others = ", ".join(k for k, _ in objects[:3])
        detail = f"{len(objects)} other objects, e.g. {others}" if objects else "the prefix is empty"
        raise S3NotFoundError(
            f"no {SHARD_SUFFIX} shards under s3://{bucket}/{_prefix_for(key)} "
            f"(endpoint {endpoint_of(settings)}; {detail})"
        )
    return shards


# -------------------------------------------------------------------------------------- streaming
class _PrematureEnd(Exception):
    """The body ended before Content-Length bytes arrived (treated as transient: resume)."""


class RetryingS3Reader(io.RawIOBase):
    """A read-only stream over one S3 object that survives dropped connections.

    Reads go through botocore's streaming body; a transient failure (or a body that ends early) makes
    the reader wait per :class:`RetryPolicy` and re-request ``bytes=<position>-`` with ``IfMatch`` on the
    original ETag. A streak of failures longer than ``max_attempts`` raises :class:`S3UnavailableError`.
    """

    def __init__(self, url: str, settings: S3Settings | None = None):
        super().__init__()
        self.url = url
        self.settings = settings or S3Settings()
        self.bucket, self.key = parse_s3_url(url)
        self.position = 0
        self.resumes = 0
        self._body: Any = None
        self.etag: str | None = None
        self.size: int | None = None
        self._open(first=True)

    def _request(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.position:
            kwargs["Range"] = f"bytes={self.position}-"
        if self.etag:
            kwargs["IfMatch"] = self.etag
        return make_s3_client(self.settings).get_object(**kwargs)

    def _open(self, first: bool = False) -> None:
        what = f"opening {self.url}" if first else f"resuming {self.url} at byte {self.position}"
        try:
            response = call_with_retries(self._request, what, self.settings)
        except S3Error as exc:
            if "PreconditionFailed" in str(exc):
                raise S3Error(f"{self.url} changed while it was being read (ETag {self.etag})") from exc
            raise
        self._body = response["Body"]
        if first:
            self.etag = response.get("ETag")
            self.size = int(response.get("ContentLength", 0))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.size is not None and self.position >= self.size:
            return 0
        want = len(buffer)
        policy = self.settings.retry
        failures = 0
        started = time.monotonic()
        while True:
            try:
                data = self._body.read(want)
                if not data:
                    raise _PrematureEnd(f"stream ended at byte {self.position} of {self.size}")
                n = len(data)
                buffer[:n] = data
                self.position += n
                return n
            except Exception as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                if failures >= policy.max_attempts:
                    raise S3UnavailableError(
                        f"reading {self.url}: S3 endpoint {endpoint_of(self.settings)} failed {failures} times in "
                        f"a row at byte {self.position} of {self.size} over {time.monotonic() - started:.1f} s "
                        f"(last error {_describe(exc)})"
                    ) from exc
                delay = policy.delay(failures - 1)
                log.warning(
                    "reading %s failed at byte %d (%s); resuming in %.2f s",
                    self.url, self.position, _describe(exc), delay,
                )
                time.sleep(delay)
                self._close_body()
                self.resumes += 1
                self._open()

    def _close_body(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            except Exception:  # closing a broken connection may fail too; nothing to do about it
                pass
            self._body = None

    def close(self) -> None:
        self._close_body()
        super().close()

    def __repr__(self) -> str:
        return f"<S3 stream {self.url}>"


def open_s3_stream(url: str, settings: S3Settings | None = None, buffer_size: int = 1 << 20) -> io.BufferedReader:
    """Open ``s3://bucket/key`` for sequential reading (buffered; retries and resumes, see the module doc)."""
    return io.BufferedReader(RetryingS3Reader(url, settings), buffer_size=buffer_size)
