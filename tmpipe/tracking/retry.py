"""Retry MLflow calls on transient failures; turn every failure into ``TrackingError``.

Transient: a locked SQLite file (several mapped tasks write at once), a refused or timed-out
connection, and 5xx/429 answers from a tracking server. Everything else fails at once with
``retryable=False`` so Airflow does not retry a request that can never succeed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

import tenacity

from tmpipe.abort import ensure_not_aborted
from tmpipe.errors import TmpipeError, TrackingError
from tmpipe.redaction import redact_url_credentials

log = logging.getLogger(__name__)

T = TypeVar("T")

# Whole operations, on top of MLflow's own per-request HTTP retries
# (MLFLOW_HTTP_REQUEST_MAX_RETRIES, default 7 with exponential backoff) for servers;
# for SQLite this layer is the only one, and "database is locked" clears within seconds.
ATTEMPTS = 4
WAIT_INITIAL_SECONDS = 0.5
WAIT_MAX_SECONDS = 8.0

# A locked SQLite/PostgreSQL row or file has no exception type of its own (OperationalError also
# covers errors that never clear), so it is recognised by its message.
_TRANSIENT_TEXT = ("database is locked", "database table is locked", "could not serialize access")


def _transient_types() -> tuple[type[BaseException], ...]:
    """Connection failures of the HTTP stack under MLflow's REST client (imported once MLflow has run)."""
    import requests
    import urllib3

    return (
        ConnectionError,  # builtin: refused, reset, RemoteDisconnected
        TimeoutError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.RetryError,
        urllib3.exceptions.MaxRetryError,
        urllib3.exceptions.NewConnectionError,
        urllib3.exceptions.ProtocolError,
    )


def _transient_error_codes() -> set[str]:
    """MLflow's codes for a store that may answer later: SQL stores report a lost connection or a
    lock as TEMPORARILY_UNAVAILABLE; a rate limit is REQUEST_LIMIT_EXCEEDED."""
    from mlflow.protos.databricks_pb2 import REQUEST_LIMIT_EXCEEDED, TEMPORARILY_UNAVAILABLE, ErrorCode

    return {ErrorCode.Name(REQUEST_LIMIT_EXCEEDED), ErrorCode.Name(TEMPORARILY_UNAVAILABLE)}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def http_status(exc: BaseException) -> int | None:
    """HTTP status of an MLflow REST error, None when the error did not come from a server."""
    from mlflow.exceptions import RestException

    for item in _chain(exc):
        if isinstance(item, RestException):
            return item.get_http_status_code()
    return None


def is_transient(exc: BaseException) -> bool:
    """True when the same call may succeed if tried again shortly."""
    if isinstance(exc, TmpipeError):
        return False
    status = http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    transient_types, transient_codes = _transient_types(), _transient_error_codes()
    for item in _chain(exc):  # MLflow raises its own exception while handling the HTTP stack's
        if isinstance(item, transient_types) or getattr(item, "error_code", None) in transient_codes:
            return True
        text = str(item).lower()
        if any(marker in text for marker in _TRANSIENT_TEXT):
            return True
    return False


def call_with_retry(operation: str, func: Callable[[], T]) -> T:
    """Run ``func`` with exponential backoff on transient errors; wrap failures."""
    ensure_not_aborted(f"MLflow {operation}")
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        wait=tenacity.wait_exponential(multiplier=WAIT_INITIAL_SECONDS, max=WAIT_MAX_SECONDS),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=lambda state: log.warning(
            "MLflow %s failed (attempt %d), retrying: %s",
            operation,
            state.attempt_number,
            redact_url_credentials(str(state.outcome.exception())) if state.outcome else None,
        ),
        reraise=True,
    )
    try:
        return retrying(func)
    except TmpipeError:
        raise
    except Exception as exc:
        raise TrackingError(
            redact_url_credentials(f"MLflow {operation} failed: {exc}"), retryable=is_transient(exc), status=http_status(exc)
        ) from exc


def with_retry(operation: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator form of :func:`call_with_retry` for whole, idempotent operations."""

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args, **kwargs) -> T:
            return call_with_retry(operation, lambda: func(*args, **kwargs))

        return wrapper

    return decorate
