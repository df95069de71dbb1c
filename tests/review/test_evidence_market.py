"""The evidence pack and the engine compute market statistics the same way (one implementation)."""

import csv

import numpy as np
import pytest

from tmpipe.engine.market import MARKET_KEYS, market_summary
from tmpipe.review.evidence import inference_from_backtest


@pytest.mark.parametrize("bars", [60, 21, 5])
def test_evidence_from_an_equity_curve_matches_the_engine_market_summary(tmp_path, bars):
    rng = np.random.default_rng(7)
    closes = 100 * np.exp(np.cumsum(rng.normal(0.002, 0.01, bars)))
    curve = tmp_path / "equity_curve.csv"
    with curve.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "close"])
        writer.writerows([f"2024-01-{i % 28 + 1:02d}", f"{c:.10f}"] for i, c in enumerate(closes))
    engine_result = {"symbol": "AAPL", "last_action": {"action": "long", "target_position": 1.0, "date": "2024-02-01"},
                     "equity_curve_path": str(curve), "metrics": {"test": {"bars_per_year": 252}}}
    from_evidence = inference_from_backtest(engine_result)["market"]
    from_engine = market_summary(np.round(closes, 10), 252)
    assert set(from_evidence) == set(MARKET_KEYS)
    for key in MARKET_KEYS:
        assert from_evidence[key] == pytest.approx(from_engine[key], abs=1e-6), key
