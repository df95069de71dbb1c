"""The run summary: one row per symbol (status, action, confidence, Sharpe, MLflow link)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from tmpipe.errors import ErrorRecord, describe
from tmpipe.pipeline.modes import STAGES, last_stage


@dataclass(frozen=True)
class StageOutputs:
    """One symbol's XComs: each stage's return value and, for a failed stage, its ErrorRecord."""

    symbol: str
    results: dict[str, Any]
    errors: dict[str, ErrorRecord | None]


def summarize_symbols(
    outputs: list[StageOutputs],
    *,
    mode: str,
    run_error: str | None = None,
    dropped_symbols: list[str] | None = None,
    no_symbols: str | None = None,
) -> dict[str, Any]:
    """``run_error``: what failed outside the symbols' chains (e.g. ``resolve_symbols: ...``);
    ``dropped_symbols``: those the symbol cap left out; ``no_symbols``: why nothing ran, when allowed."""
    rows: list[dict[str, Any]] = []
    last = last_stage(mode)
    for out in outputs:
        merged: dict[str, Any] = {}
        for stage in STAGES:
            if isinstance(out.results.get(stage), dict):
                merged.update(out.results[stage])
        failure = next(((s, e) for s in STAGES if (e := out.errors.get(s))), None)
        done = out.results.get(last) is not None
        status = "success" if done else "failed"
        error = None
        if failure:
            error = f"{failure[0]}: {describe(failure[1])}"
        elif not done:
            error = "did not reach " + last
        rows.append(
            {
                "symbol": out.symbol,
                "status": status,
                "error": error,
                "action": merged.get("action"),
                "confidence": merged.get("confidence"),
                "test_sharpe": merged.get("test_sharpe"),
                "model_name": merged.get("model_name"),
                "model_version": merged.get("model_version"),
                "promoted": merged.get("promoted"),
                "gate_reasons": list(merged.get("gate_reasons") or []),
                "mlflow_run_id": merged.get("mlflow_run_id"),
                "mlflow_experiment_id": merged.get("mlflow_experiment_id"),
                "mlflow_run_url": merged.get("mlflow_run_url"),
                "signal_artifact_id": merged.get("signal_artifact_id"),
                "llm_artifact_id": merged.get("llm_artifact_id"),
                "review_cost_usd": merged.get("review_cost_usd"),
            }
        )
    costs = [row["review_cost_usd"] for row in rows if row["review_cost_usd"] is not None]
    return {"mode": mode, "symbols": rows, "error": run_error, "dropped_symbols": list(dropped_symbols or []), "no_symbols": no_symbols,
            "review_cost_usd": round(sum(costs), 8) if costs else None}


def run_failure(summary: dict[str, Any]) -> str | None:
    """One line saying why the DAG run must fail, or None when every part of it succeeded."""
    if summary.get("error"):
        return summary["error"]
    failed = [row["symbol"] for row in summary["symbols"] if row["status"] != "success"]
    if failed:
        return f"{len(failed)} of {len(summary['symbols'])} symbols failed: {', '.join(failed)}"
    return None


def render_table(summary: dict[str, Any]) -> str:
    """Plain-text table for logs and the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mode {summary['mode']}")
    for column in ("symbol", "status", "action", "confidence", "sharpe", "model", "promoted", "mlflow run", "error"):
        table.add_column(column, overflow="fold")  # wrap, never cut: run ids and reasons stay whole
    for row in summary["symbols"]:
        confidence = f"{row['confidence']:.2f}" if row["confidence"] is not None else "-"
        sharpe = f"{row['test_sharpe']:.2f}" if row["test_sharpe"] is not None else "-"
        table.add_row(
            row["symbol"],
            row["status"],
            row["action"] or "-",
            confidence,
            sharpe,
            f"v{row['model_version']}" if row.get("model_version") else "-",
            _promotion(row),
            row["mlflow_run_url"] or row["mlflow_run_id"] or "-",
            row["error"] or "",
        )
    buffer = io.StringIO()
    console = Console(width=160, file=buffer)
    console.print(table)
    for label, value in (
        ("error", summary.get("error")),
        ("dropped by the symbol cap", ", ".join(summary.get("dropped_symbols") or [])),
        ("no symbols", summary.get("no_symbols")),
        ("LLM cost of the reviews (review.model_client.prices)",
         None if summary.get("review_cost_usd") is None else f"{summary['review_cost_usd']:.6f} USD, per symbol: "
         + ", ".join(f"{r['symbol']} {r['review_cost_usd']:.6f}" for r in summary["symbols"] if r.get("review_cost_usd") is not None)),
    ):
        if value:
            console.print(f"{label}: {value}", markup=False, highlight=False, soft_wrap=True)
    return buffer.getvalue()


def _promotion(row: dict[str, Any]) -> str:
    """``yes``, ``no: <the gate's reasons>``, or ``-`` when no model was registered or loaded."""
    if row.get("promoted") is None:
        return "-"
    if row["promoted"]:
        return "yes"
    return "no: " + "; ".join(row.get("gate_reasons") or ["the promotion gate failed"])
