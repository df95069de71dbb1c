"""Schema-valid artifact contents (a TradingSignal, a review trace) for the store tests."""

from __future__ import annotations

DAG = "trademaster_autogen_pipeline_workflow"
SHA = "0" * 64


def signal_content(symbol: str = "AAA", **changes) -> dict:
    """An approved BUY signal (schemas/trading_signal.schema.json); ``changes`` replace top-level keys."""
    return {
        "schema_version": 1,
        "symbol": symbol,
        "action": "BUY",
        "confidence": 0.62,
        "target_position": 0.5,
        "horizon": "5d",
        "reference_price": 210.62,
        "stop_loss": 200.0,
        "take_profit": 225.0,
        "rationale": "Backtest Sharpe 1.25 beats buy-and-hold.",
        "risks": ["drawdown 18%"],
        "evidence": {"test.sharpe": 1.25},
        "review_status": "approved",
        "reviewer_model": "rules-model",
        "token_usage": {"prompt": 0, "completion": 0},
        "lineage": {"dag_id": DAG, "dag_run_id": "manual__1", "mlflow_run_id": None, "mlflow_experiment_id": None,
                    "model_uri": None, "data_sha256": None},
        "as_of": "2024-06-27",
        "horizon_end": "2024-07-05",
        "data_sha256": SHA,
        "model_version": "models:/tmpipe.AAA.deepscalper/1",
        "mlflow_run_id": None,
        "mlflow_run_url": None,
        "created_at": "2024-06-28T00:00:00+00:00",
        "fallback_cause": None,
        **changes,
    }


def trace_content(symbol: str = "AAA") -> dict:
    """A review trace (schemas/llm_artifact.schema.json) with no entries."""
    return {
        "schema_version": 2,
        "kind": "review_trace",
        "symbol": symbol,
        "reviewer": {"provider": "rules", "model": "rules-model", "is_llm": False, "label": "rules model (not an LLM)"},
        "model_client": {"provider": "rules"},
        "team": {"type": "round_robin", "agents": [], "termination": {}, "max_retries": 1},
        "evidence": {"uri": None, "sha256": SHA, "bytes": 2},
        "task_prompt": "Review the evidence.",
        "attempts": [],
        "retries": 0,
        "termination_reason": "signal_written",
        "outcome": {"action": "BUY", "confidence": 0.62, "review_status": "approved", "fallback_cause": None},
        "token_usage": {"prompt": 0, "completion": 0},
        "entries": [],
        "timing": {"started_at": None, "finished_at": None, "duration_ms": None},
        "chain": {"algorithm": "sha256", "body_sha256": SHA, "head": SHA, "timing_sha256": SHA},
    }


def score_content(signal_id: int, *, scorer: tuple[str, str], symbol: str = "AAA", signal_run: str = "manual__1",
                  **changes) -> dict:
    """A signal_score (schemas/signal_score.schema.json) of signal artifact ``signal_id``, by the run ``scorer``."""
    return {
        "schema_version": 1, "kind": "signal_score", "symbol": symbol,
        "signal": {"artifact_id": signal_id, "dag_id": DAG, "dag_run_id": signal_run, "mlflow_run_id": "signal-run",
                   "mlflow_experiment_id": "3", "trace_head_sha256": SHA},
        "scored_by": {"dag_id": scorer[0], "dag_run_id": scorer[1]},
        "graded_at": "2024-07-08T00:00:00Z", "as_of": "2024-06-27", "horizon": "5d", "horizon_bars": 5,
        "horizon_end_bar": "2024-07-05", "entry_close": 210.62, "exit_close": 214.0, "forward_return": 0.016,
        "action": "BUY", "confidence": 0.62, "target_position": 0.5, "direction_right": True, "pnl": 0.0065,
        "buy_and_hold_pnl": 0.013, "cost_rate": 0.0015, "brier": 0.1444,
        **changes,
    }
