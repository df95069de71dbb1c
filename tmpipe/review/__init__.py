"""AutoGen review stage: evidence pack -> agent team -> TradingSignal + sealed reasoning trace.

Importing this package does not import autogen; the team is built inside review_signal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build_evidence", "review_signal", "verify_trace", "ReviewOutcome", "TraceVerification",
           "enable_mlflow_tracing"]

_LAZY = {
    "build_evidence": "tmpipe.review.evidence",
    "review_signal": "tmpipe.review.reviewer",
    "ReviewOutcome": "tmpipe.review.reviewer",
    "verify_trace": "tmpipe.review.trace",
    "TraceVerification": "tmpipe.review.trace",
    "enable_mlflow_tracing": "tmpipe.review.mlflow_tracing",
}

if TYPE_CHECKING:
    from tmpipe.review.evidence import build_evidence
    from tmpipe.review.mlflow_tracing import enable_mlflow_tracing
    from tmpipe.review.reviewer import ReviewOutcome, review_signal
    from tmpipe.review.trace import TraceVerification, verify_trace


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tmpipe.review' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
