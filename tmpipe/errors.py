"""One exception hierarchy for the whole project.

Errors carry structured fields so callers never parse message text: ``kind`` (the class
name), ``stage`` and ``symbol`` when known, ``retryable`` (whether another try could help: a
network blip, not bad data; the Airflow operators read it) and ``status`` (an HTTP status
when a server answered). A failed stage leaves them in XCom as :func:`error_record`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from tmpipe.spec.problems import Problem

# A failed stage's XCom ``error``: the first line of the message, redacted, at most this long.
MESSAGE_MAX_CHARS = 300


class TmpipeError(Exception):
    """Base of every error this project raises on purpose."""

    retryable: bool = False
    status: int | None = None

    def __init__(
        self,
        message: str = "",
        *,
        symbol: str | None = None,
        stage: str | None = None,
        retryable: bool | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.symbol = symbol
        self.stage = stage
        if retryable is not None:
            self.retryable = retryable
        if status is not None:
            self.status = status

    @property
    def kind(self) -> str:
        return type(self).__name__


class SpecError(TmpipeError):
    """A spec, link config or conf document is invalid; ``problems`` holds every one."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigBoundsError(TmpipeError):
    """A resolved value is outside the spec's ``limits``; names the layer that set it."""

    def __init__(self, key: str, value: object, bound: str, layer: str, source: str | None):
        self.key, self.value, self.bound, self.layer, self.source = key, value, bound, layer, source
        where = f"{layer} ({source})" if source else layer
        super().__init__(f"{key}={value!r} exceeds {bound}; set by {where}")


class SymbolError(TmpipeError):
    """A symbol name is not safe to use in paths, tags or labels."""


class SymbolSelectionError(TmpipeError):
    """A run's symbol list breaks the spec's symbol_selection policy (none to run, too many named)."""


class ModeError(TmpipeError):
    """An unknown run mode."""


class DataError(TmpipeError):
    """Market data cannot be used; the message names the file and what is wrong."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class DagImportError(TmpipeError):
    """The installed DAG file did not import, so a local run cannot start."""


class EngineError(TmpipeError):
    """Training, backtest or inference failed for a reason other than the data."""


class UpstreamError(EngineError):
    """The upstream TradeMaster backend could not run or its output could not be read."""


class ReviewError(TmpipeError):
    """The review team could not produce a signal (fallbacks are not errors); ``symbol`` when known."""


class TrackingError(TmpipeError):
    """MLflow tracking or registry failed; ``status`` is the server's HTTP status, if one answered."""

    retryable = True


class ModelNotPromotedError(TrackingError):
    """inference mode asked for a symbol that has no promoted model yet."""

    retryable = False


class StoreError(TmpipeError):
    """The WebUI artifacts store refused or failed a request."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(message, status=status, retryable=retryable)


class NotFoundError(StoreError):
    """The store has no such object (HTTP 404)."""

    def __init__(self, message: str):
        super().__init__(message, status=404)


class ErrorRecord(TypedDict):
    """What a failed task leaves in XCom (key ``error``) for the summary: data, not text to parse."""

    stage: str
    symbol: str | None
    kind: str
    message: str
    retryable: bool
    status: int | None


ERROR_KEY = "error"  # the XCom key of a failed task's ErrorRecord


class TaskProcessDied(TmpipeError):
    """A task's process ended before the task could record how it went (killed, out of memory, a
    crash in native code); Airflow retries the task if it has retries left."""

    retryable = True


def error_record(exc: BaseException, *, stage: str, symbol: str | None = None) -> ErrorRecord:
    """The structured, credential-free record of ``exc``; an error outside the hierarchy counts
    as retryable (Airflow retries it), one of ours says itself."""
    from tmpipe.redaction import redact_url_credentials

    lines = redact_url_credentials(str(exc)).splitlines()
    ours = exc if isinstance(exc, TmpipeError) else None
    return {
        "stage": (ours.stage if ours is not None else None) or stage,
        "symbol": (ours.symbol if ours is not None else None) or symbol,
        "kind": type(exc).__name__,
        "message": (lines[0] if lines else "")[:MESSAGE_MAX_CHARS],
        "retryable": ours.retryable if ours is not None else True,
        "status": ours.status if ours is not None else None,
    }


def describe(record: ErrorRecord | dict[str, Any]) -> str:
    """``Kind: message``, the one line the summary and Airflow's failure show."""
    return f"{record['kind']}: {record['message']}" if record["message"] else record["kind"]
