"""The run summary: one row per symbol (status, action, confidence, Sharpe, MLflow link)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

STAGES = ("train_backtest", "inference", "review", "persist")
LAST_STAGE = {"both": "persist", "inference": "persist", "train_backtest": "train_backtest"}


@dataclass(frozen=True)
class StageOutputs:
    symbol: str
    results: dict[str, Any]
    errors: dict[str, str | None]


def summarize_symbols(outputs: list[StageOutputs], *, mode: str) -> dict[str, Any]:
    rows = []
    for out in outputs:
        merged: dict[str, Any] = {}
        for stage in STAGES:
            if isinstance(out.results.get(stage), dict):
                merged.update(out.results[stage])
        failed_stage = next((s for s in STAGES if out.errors.get(s)), None)
        done = out.results.get(LAST_STAGE[mode]) is not None
        status = "success" if done else "failed"
        error = None
        if failed_stage:
            error = f"{failed_stage}: {out.errors[failed_stage]}"
        elif not done:
            error = "did not reach " + LAST_STAGE[mode]
        rows.append(
            {
                "symbol": out.symbol,
                "status": status,
                "error": error,
                "action": merged.get("action"),
                "confidence": merged.get("confidence"),
                "test_sharpe": merged.get("test_sharpe"),
                "mlflow_run_id": merged.get("mlflow_run_id"),
                "mlflow_experiment_id": merged.get("mlflow_experiment_id"),
                "mlflow_run_url": merged.get("mlflow_run_url"),
                "signal_artifact_id": merged.get("signal_artifact_id"),
                "llm_artifact_id": merged.get("llm_artifact_id"),
            }
        )
    return {"mode": mode, "symbols": rows}


def render_table(summary: dict[str, Any]) -> str:
    """Plain-text table for logs and the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mode {summary['mode']}")
    for column in ("symbol", "status", "action", "confidence", "sharpe", "mlflow run", "error"):
        table.add_column(column)
    for row in summary["symbols"]:
        confidence = f"{row['confidence']:.2f}" if row["confidence"] is not None else "-"
        sharpe = f"{row['test_sharpe']:.2f}" if row["test_sharpe"] is not None else "-"
        table.add_row(
            row["symbol"],
            row["status"],
            row["action"] or "-",
            confidence,
            sharpe,
            row["mlflow_run_url"] or row["mlflow_run_id"] or "-",
            row["error"] or "",
        )
    buffer = io.StringIO()
    Console(width=160, file=buffer).print(table)
    return buffer.getvalue()
