"""Performance metrics of a strategy's per-bar returns, annualised with the data's bars_per_year."""

from __future__ import annotations

import math

import numpy as np

METRIC_KEYS = (
    "total_return", "annual_return", "annual_volatility", "sharpe", "sortino", "max_drawdown",
    "calmar", "win_rate", "turnover", "bars", "bars_per_year",
)


def _finite(value) -> float | None:
    """Ratios that are undefined (no volatility, no downside, no drawdown) become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def returns_from_equity(equity: np.ndarray) -> np.ndarray:
    """Simple per-bar returns of an equity curve; bars after ruin (0 -> 0) count as 0."""
    equity = np.asarray(equity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = equity[1:] / equity[:-1] - 1.0
    return np.where(equity[:-1] > 0, returns, 0.0)


def compute_metrics(returns: np.ndarray, positions: np.ndarray, bars_per_year: float) -> dict:
    """Metrics of ``returns`` (one per bar) earned by ``positions`` (held over those bars).

    Sharpe and Sortino use a zero risk-free rate; max_drawdown is a positive fraction 0..1;
    win_rate is the share of bars in the market with a positive return (None if never in);
    turnover is the mean |position change| per bar as a fraction of equity.
    """
    import empyrical

    returns = np.asarray(returns, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)[: len(returns)]
    if returns.size == 0:
        raise ValueError("metrics need at least one return")
    total = float(np.prod(1.0 + returns) - 1.0)
    annual_return = float(empyrical.annual_return(returns, annualization=bars_per_year))
    max_drawdown = abs(float(empyrical.max_drawdown(returns)))  # empyrical's is <= 0; abs, not -, so no -0.0
    in_market = positions != 0
    changes = np.abs(np.diff(np.concatenate([[0.0], positions])))
    return {
        "total_return": total,
        "annual_return": _finite(annual_return),
        "annual_volatility": _finite(empyrical.annual_volatility(returns, annualization=bars_per_year)),
        "sharpe": _finite(empyrical.sharpe_ratio(returns, annualization=bars_per_year)),
        "sortino": _finite(empyrical.sortino_ratio(returns, annualization=bars_per_year)),
        "max_drawdown": max_drawdown,
        "calmar": _finite(annual_return / max_drawdown) if max_drawdown > 0 else None,
        "win_rate": float((returns[in_market] > 0).mean()) if in_market.any() else None,
        "turnover": float(changes.mean()),
        "bars": int(returns.size),
        "bars_per_year": float(bars_per_year),
    }
