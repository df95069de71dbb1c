"""Signals whose right answers are known: made with perfect and with inverted foresight."""

from __future__ import annotations

import numpy as np
import pytest

from tmpipe.signals.scoring import PriceSeries

HORIZON_BARS = 5


def weekday_series(rows: int = 80, seed: int = 3) -> PriceSeries:
    dates = np.busday_offset(np.datetime64("2024-01-01"), np.arange(rows), roll="forward").astype("datetime64[ns]")
    steps = np.random.default_rng(seed).normal(0, 0.01, rows)
    close = 100 * np.exp(np.cumsum(steps))
    return PriceSeries(dates, close, 252.0)


def make_signal(symbol: str, series: PriceSeries, index: int, *, foresight: str, confidence: float = 0.8) -> dict:
    """A schema-valid TradingSignal for bar ``index``: right (perfect) or wrong (inverted) about the next 5 bars."""
    up = series.close[min(index + HORIZON_BARS, len(series.close) - 1)] > series.close[index]
    action = "BUY" if up == (foresight == "perfect") else "SELL"
    position = 1.0 if action == "BUY" else -1.0
    price = float(series.close[index])
    as_of = str(np.datetime_as_string(series.dates[index], unit="D"))
    return {
        "schema_version": 1, "symbol": symbol, "action": action, "confidence": confidence,
        "target_position": position, "horizon": "5d", "reference_price": price,
        "stop_loss": price * (1 - 0.05 * position), "take_profit": price * (1 + 0.05 * position),
        "rationale": f"{foresight} foresight", "risks": [], "evidence": {},
        "review_status": "approved", "reviewer_model": "test", "token_usage": {"prompt": 0, "completion": 0},
        "lineage": {"dag_id": "d", "dag_run_id": f"r{index}", "mlflow_run_id": None, "mlflow_experiment_id": None,
                    "model_uri": None, "data_sha256": None},
        "as_of": as_of, "horizon_end": None, "data_sha256": None, "model_version": "m", "mlflow_run_id": None,
        "mlflow_run_url": None, "created_at": "2024-01-01T00:00:00Z", "fallback_cause": None,
    }


@pytest.fixture
def series() -> PriceSeries:
    return weekday_series()
