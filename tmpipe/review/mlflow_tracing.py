"""Opt-in MLflow tracing of the review team via ``mlflow.autogen.autolog()``.

Our own trace (the ``llm`` artifact) is the audited record; MLflow traces are a convenience
view in the MLflow UI. Off unless a caller turns it on.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
_enabled = False


def review_span(symbol: str):
    """A parent span grouping one review's model calls in MLflow (a no-op when tracing is off)."""
    import contextlib

    if not _enabled:
        return contextlib.nullcontext()
    import mlflow
    from mlflow.entities import SpanType

    return mlflow.start_span(name=f"tmpipe.review {symbol}", span_type=SpanType.AGENT,
                             attributes={"tmpipe.symbol": symbol})


def enable_mlflow_tracing(enable: bool = True) -> bool:
    """Turn MLflow's AutoGen autologging on (or off); returns whether it is now on.

    autolog patches the ChatCompletionClient subclasses that exist when it runs, so this
    imports the review's own clients first. MLflow telemetry is switched off (unless the
    environment says otherwise) because runs must not call hosts other than loopback.
    """
    try:
        import mlflow
        import mlflow.autogen  # the flavor module is not imported by `import mlflow`
    except ImportError as exc:
        log.info("MLflow tracing unavailable: %s", exc)
        return False
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import autogen_agentchat.agents  # noqa: F401
    import autogen_ext.models.openai
    import autogen_ext.models.replay  # noqa: F401

    import tmpipe.review.clients  # noqa: F401 - defines RecordingClient, imports the rules client
    global _enabled  # noqa: PLW0603 - one switch per process, as the autolog patch it records
    try:
        mlflow.autogen.autolog(disable=not enable, silent=True)
    except Exception as exc:  # a flavor/version mismatch must not break the review
        log.warning("mlflow.autogen.autolog() failed, MLflow tracing stays off: %s", exc)
        _enabled = False
        return False
    _enabled = enable
    return enable
