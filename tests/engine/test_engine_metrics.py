"""Metrics agree with empyrical (the engine computes them with NumPy) and with hand computations."""

import json
import math

import empyrical
import numpy as np
import pytest

from tmpipe.engine.metrics import compute_metrics, returns_from_equity


@pytest.mark.parametrize("bars_per_year", [252.0, 365.0, 8760.0])
def test_metrics_equal_empyrical(bars_per_year):
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0004, 0.012, 500)
    positions = rng.choice([-1.0, 0.0, 1.0], 500)
    m = compute_metrics(returns, positions, bars_per_year)
    assert m["total_return"] == pytest.approx(empyrical.cum_returns_final(returns))
    assert m["annual_return"] == pytest.approx(empyrical.annual_return(returns, annualization=bars_per_year))
    assert m["annual_volatility"] == pytest.approx(empyrical.annual_volatility(returns, annualization=bars_per_year))
    assert m["sharpe"] == pytest.approx(empyrical.sharpe_ratio(returns, annualization=bars_per_year))
    assert m["sortino"] == pytest.approx(empyrical.sortino_ratio(returns, annualization=bars_per_year))
    assert m["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(returns))
    assert m["calmar"] == pytest.approx(empyrical.calmar_ratio(returns, annualization=bars_per_year))
    # and by hand: Sharpe = mean / sample std * sqrt(bars per year), not sqrt(252) for every bar size
    assert m["sharpe"] == pytest.approx(returns.mean() / returns.std(ddof=1) * np.sqrt(bars_per_year))
    assert m["bars"] == 500 and m["bars_per_year"] == bars_per_year


def _empyrical_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


EDGE_RETURNS = {
    "ruin_then_flat": np.array([0.1, -1.0, 0.0, 0.0]),  # ending equity 0: no annual return
    "short_wiped_out": np.array([0.05, -1.4, 0.2]),  # equity below zero (a short that went wrong)
    "constant": np.full(20, 0.003),  # no dispersion: Sharpe undefined, no drawdown
    "never_down": np.array([0.01, 0.0, 0.02, 0.005]),  # no downside: Sortino undefined
    "all_down": np.array([-0.01, -0.02, -0.005]),
    "one_bar": np.array([0.02]),  # fewer than two returns: no std
    "one_loss": np.array([-0.02]),
    "flat": np.zeros(7),
    "long_hourly": np.random.default_rng(11).normal(0.0, 0.004, 5000),
}


@pytest.mark.parametrize("returns", EDGE_RETURNS.values(), ids=EDGE_RETURNS.keys())
@pytest.mark.parametrize("bars_per_year", [252.0, 8760.0])
def test_every_metric_matches_empyrical_including_undefined_cases(returns, bars_per_year):
    m = compute_metrics(returns, np.ones(len(returns)), bars_per_year)
    max_dd = empyrical.max_drawdown(returns)
    expected = {
        "total_return": empyrical.cum_returns_final(returns),
        "annual_return": _empyrical_or_none(empyrical.annual_return(returns, annualization=bars_per_year)),
        "annual_volatility": _empyrical_or_none(empyrical.annual_volatility(returns, annualization=bars_per_year)),
        "sharpe": _empyrical_or_none(empyrical.sharpe_ratio(returns, annualization=bars_per_year)),
        "sortino": _empyrical_or_none(empyrical.sortino_ratio(returns, annualization=bars_per_year)),
        "max_drawdown": abs(max_dd),
        "calmar": _empyrical_or_none(empyrical.calmar_ratio(returns, annualization=bars_per_year)),
    }
    for key, value in expected.items():
        if value is None:
            assert m[key] is None, key
        else:
            assert m[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_non_finite_returns_are_rejected():
    with pytest.raises(ValueError, match="finite"):
        compute_metrics(np.array([0.01, np.nan]), np.ones(2), 252.0)


def test_drawdown_win_rate_and_turnover_by_hand():
    equity = np.array([100.0, 120.0, 90.0, 108.0, 80.0, 100.0])
    returns = returns_from_equity(equity)  # +20%, -25%, +20%, -25.9%, +25%
    positions = np.array([1.0, 1.0, -1.0, 0.0, 1.0])
    m = compute_metrics(returns, positions, 252.0)
    assert m["max_drawdown"] == pytest.approx(1 - 80 / 120)  # peak 120 -> trough 80
    assert m["total_return"] == pytest.approx(0.0)
    # in the market on bars 0,1,2,4 with returns +20%, -25%, +20%, +25%: 3 of 4 won
    assert m["win_rate"] == pytest.approx(0.75)
    # |changes| from flat: 1, 0, 2, 1, 1 -> 5 over 5 bars
    assert m["turnover"] == pytest.approx(1.0)


def test_undefined_ratios_are_none_not_nan():
    m = compute_metrics(np.zeros(10), np.zeros(10), 252.0)
    assert m["sharpe"] is None and m["calmar"] is None and m["win_rate"] is None
    assert m["max_drawdown"] == 0.0 and m["total_return"] == 0.0


@pytest.mark.parametrize("returns", [np.zeros(10), np.full(10, 0.01)], ids=["flat", "rising"])
def test_no_drawdown_is_positive_zero(returns):
    # -0.0 == 0.0, so compare the sign and the JSON text that reaches MLflow and the WebUI
    drawdown = compute_metrics(returns, np.ones(10), 252.0)["max_drawdown"]
    assert math.copysign(1.0, drawdown) == 1.0 and json.dumps(drawdown) == "0.0"


def test_returns_after_ruin_are_zero():
    assert returns_from_equity(np.array([100.0, 0.0, 0.0])).tolist() == [-1.0, 0.0]
