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

_TRANSIENT_TEXT = ("database is locked", "database table is locked", "could not serialize access")
# MLflow's SQL stores report OperationalError (lost connection, lock) as TEMPORARILY_UNAVAILABLE.
_TRANSIENT_ERROR_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}
_TRANSIENT_CLASS_NAMES = {
    "ConnectionError",  # requests and builtin
    "ConnectTimeout",
    "ReadTimeout",
    "Timeout",
    "RetryError",
    "MaxRetryError",
    "NewConnectionError",
    "ProtocolError",
    "RemoteDisconnected",
    "ConnectionRefusedError",
    "ConnectionResetError",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def http_status(exc: BaseException) -> int | None:
    """HTTP status of an MLflow REST error, None when the error did not come from a server."""
    for item in _chain(exc):
        status_code = getattr(item, "get_http_status_code", None)
        if type(item).__name__ == "RestException" and callable(status_code):
            return status_code()
    return None


def is_transient(exc: BaseException) -> bool:
    """True when the same call may succeed if tried again shortly."""
    if isinstance(exc, TmpipeError):
        return False
    status = http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    for item in _chain(exc):
        if getattr(item, "error_code", None) in _TRANSIENT_ERROR_CODES:
            return True
        if type(item).__name__ in _TRANSIENT_CLASS_NAMES:
            return True
        text = str(item).lower()
        if any(marker in text for marker in _TRANSIENT_TEXT):
            return True
        # MLflow wraps request failures as "API request to ... failed with exception ..."
        if "api request to" in text and ("connection" in text or "max retries" in text):
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
