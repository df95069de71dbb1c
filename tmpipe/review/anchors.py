"""Copies of a trace's head kept outside the trace, and checking a trace against them.

A trace's hash chain proves only that it is self-consistent: whoever edits it can recompute
the chain. So at review time the head is also written into the signal (and so into the WebUI
``signal`` artifact) and into the MLflow tag ``tmpipe.trace_head_sha256`` of the symbol's run.
A resealed trace no longer matches those copies. There is no circle: the head covers the
trace, whose ``outcome`` repeats the signal's decision; the signal records the head, and its
decision must agree with that outcome, so editing both trace and signal still leaves the
MLflow tag and the WebUI copy behind. Whoever can rewrite all of them can forge a trace,
unless traces are signed (``TMPIPE_TRACE_HMAC_KEY``) and that person lacks the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tmpipe.errors import ReviewError
from tmpipe.review.signal import signal_problems
from tmpipe.review.trace import TraceVerification, signature_check, verify_trace

# The signal's decision, repeated in the trace's ``outcome`` (and so covered by the head).
OUTCOME_KEYS = ("action", "confidence", "review_status", "fallback_cause", "target_position", "stop_loss",
                "take_profit")


@dataclass(frozen=True)
class Anchor:
    """A head recorded outside the trace: where, which head, for which symbol, and the signal if it is one."""

    where: str
    head: str | None
    symbol: str | None = None
    signal: dict | None = None


def signal_anchor(signal: Any, where: str) -> Anchor:
    if not isinstance(signal, dict):
        raise ReviewError(f"{where}: not a JSON object")
    return Anchor(where, signal.get("trace_head_sha256"), signal.get("symbol"), signal)


def mlflow_anchor(run_id: str, tracking_uri: str) -> Anchor:
    """The head tagged on an MLflow run (the symbol's run of the DAG run)."""
    from mlflow.exceptions import MlflowException

    from tmpipe.tracking import client_for
    from tmpipe.tracking.run_identity import TAG_SYMBOL, TAG_TRACE_HEAD

    try:
        tags = client_for(tracking_uri).get_run(run_id).data.tags
    except MlflowException as exc:
        raise ReviewError(f"MLflow run {run_id}: {exc.message}") from exc  # the URI may hold credentials
    return Anchor(f"MLflow run {run_id} tag {TAG_TRACE_HEAD}", tags.get(TAG_TRACE_HEAD), tags.get(TAG_SYMBOL))


def webui_anchor(store: Any, artifact_id: int) -> Anchor:
    """A WebUI ``signal`` artifact (its recorded head and decision) or ``llm`` artifact (the stored trace's head)."""
    artifact = store.get_artifact(artifact_id)
    where = f"WebUI artifact {artifact_id} ({artifact.artifact_type}, {artifact.dag_run_id})"
    if artifact.artifact_type == "signal":
        return signal_anchor(artifact.content, where)
    chain = artifact.content.get("chain")
    return Anchor(where, chain.get("head") if isinstance(chain, dict) else None, artifact.symbol)


def anchor_problems(trace: dict, anchor: Anchor) -> list[str]:
    """What differs between a verified trace and one outside copy of its head, on one line."""
    head = trace["chain"]["head"]
    if not anchor.head:
        return [f"unconfirmed: {anchor.where} records no trace head"]
    differences = []
    if anchor.head != head:
        differences.append(f"head {head[:16]}... in the trace, {anchor.head[:16]}... there")
    if anchor.symbol is not None and anchor.symbol != trace["symbol"]:
        differences.append(f"symbol {trace['symbol']} in the trace, {anchor.symbol} there")
    if anchor.signal is not None:
        outcome = trace["outcome"]
        differences += [f"{key} {outcome[key]!r} in the trace's outcome, {anchor.signal.get(key)!r} there"
                        for key in OUTCOME_KEYS if key in outcome and anchor.signal.get(key) != outcome[key]]
    problems = [f"tampered: {anchor.where} differs: " + "; ".join(differences)] if differences else []
    if anchor.signal is not None:
        problems += [f"{anchor.where}: {problem}" for problem in signal_problems(anchor.signal)]
    return problems


def verify_anchored(trace: Any, anchors: list[Anchor], key: bytes | None) -> TraceVerification:
    """The chain, then each outside copy of the head, then the HMAC (checked when there is a key)."""
    result = verify_trace(trace)
    if not result.ok:
        return result
    problems = [problem for anchor in anchors for problem in anchor_problems(trace, anchor)]
    signature_problem, status = signature_check(trace, key)
    if signature_problem:
        problems.append(signature_problem)
    notes = [f"head matches {anchor.where}" for anchor in anchors if anchor.head == trace["chain"]["head"]] + [status]
    return TraceVerification(not problems, problems, notes)
