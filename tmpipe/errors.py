"""One exception hierarchy for the whole project.

Errors carry structured fields so callers never parse message text; ``retryable`` tells
the Airflow operators whether another try could help (a network blip) or not (bad data).
"""

from __future__ import annotations


class TmpipeError(Exception):
    """Base of every error this project raises on purpose."""

    retryable: bool = False


class SpecError(TmpipeError):
    """A spec, link config or conf document is invalid; ``problems`` holds every one."""

    def __init__(self, problems: list["Problem"]):  # noqa: F821 - defined in tmpipe.spec.problems
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


class EngineError(TmpipeError):
    """Training, backtest or inference failed for a reason other than the data."""


class UpstreamError(EngineError):
    """The upstream TradeMaster backend could not run or its output could not be read."""


class ReviewError(TmpipeError):
    """The review team could not produce a signal (fallbacks are not errors)."""


class TrackingError(TmpipeError):
    """MLflow tracking or registry failed."""

    retryable = True


class ModelNotPromotedError(TrackingError):
    """inference mode asked for a symbol that has no promoted model yet."""

    retryable = False


class StoreError(TmpipeError):
    """The WebUI artifacts store refused or failed a request."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False):
        self.status = status
        self.retryable = retryable
        super().__init__(message)


class NotFoundError(StoreError):
    """The store has no such object (HTTP 404)."""

    def __init__(self, message: str):
        super().__init__(message, status=404)
