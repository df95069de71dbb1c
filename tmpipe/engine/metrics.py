"""Performance metrics of a strategy's per-bar returns, annualised with the data's bars_per_year.

The ratios follow empyrical's definitions (tests/engine/test_engine_metrics.py asserts equality
with empyrical-reloaded on the same returns) but are computed with NumPy: importing empyrical
loads pandas' and SciPy's optimize/stats stacks, about 58 MB of peak RSS in every training process
for a handful of array reductions.
"""

from __future__ import annotations

import math

import numpy as np

from tmpipe.finite import finite_or_none

def sharpe_or_zero(metrics: dict) -> float:
    """A split's Sharpe for ranking and medians: a policy that never trades has none (zero
    volatility) and counts as 0, the Sharpe of holding cash."""
    return metrics["sharpe"] if metrics["sharpe"] is not None else 0.0


METRIC_KEYS = (
    "total_return", "annual_return", "annual_volatility", "sharpe", "sortino", "max_drawdown",
    "calmar", "win_rate", "turnover", "bars", "bars_per_year",
)


def returns_from_equity(equity: np.ndarray) -> np.ndarray:
    """Simple per-bar returns of an equity curve; bars after ruin (0 -> 0) count as 0."""
    equity = np.asarray(equity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = equity[1:] / equity[:-1] - 1.0
    return np.where(equity[:-1] > 0, returns, 0.0)


def annual_return(returns: np.ndarray, bars_per_year: float) -> float:
    """Compound annual growth rate (empyrical.annual_return); NaN if the equity ends <= 0."""
    ending_value = np.prod(1.0 + returns)
    with np.errstate(invalid="ignore"):
        return float(ending_value ** (bars_per_year / returns.size) - 1.0)


def annual_volatility(returns: np.ndarray, bars_per_year: float) -> float:
    """Sample standard deviation scaled by sqrt(bars_per_year) (empyrical.annual_volatility)."""
    return float(np.std(returns, ddof=1) * math.sqrt(bars_per_year)) if returns.size > 1 else math.nan


def sharpe_ratio(returns: np.ndarray, bars_per_year: float) -> float:
    """Mean over sample std, times sqrt(bars_per_year), zero risk-free rate (empyrical.sharpe_ratio).

    Identical returns have a std of exactly 0 (not the ~1e-18 residue of the float mean), so the
    ratio is infinite or NaN there, as in empyrical.
    """
    if returns.size < 2:
        return math.nan
    std = 0.0 if returns.max() == returns.min() else np.std(returns, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(returns.mean(), std) * math.sqrt(bars_per_year))


def sortino_ratio(returns: np.ndarray, bars_per_year: float) -> float:
    """Annualised mean over annualised downside deviation below 0 (empyrical.sortino_ratio)."""
    if returns.size < 2:
        return math.nan
    downside = math.sqrt(np.mean(np.square(np.minimum(returns, 0.0)))) * math.sqrt(bars_per_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(returns.mean() * bars_per_year, downside))


def max_drawdown(returns: np.ndarray) -> float:
    """Largest peak-to-trough fall of the compounded equity, as a positive fraction 0..1."""
    equity = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    peaks = np.fmax.accumulate(equity)
    return abs(float(np.min((equity - peaks) / peaks)))  # abs, not -, so no drawdown is +0.0


def compute_metrics(returns: np.ndarray, positions: np.ndarray, bars_per_year: float) -> dict:
    """Metrics of ``returns`` (one per bar) earned by ``positions`` (held over those bars).

    Sharpe and Sortino use a zero risk-free rate; max_drawdown is a positive fraction 0..1;
    win_rate is the share of bars in the market with a positive return (None if never in);
    turnover is the mean |position change| per bar as a fraction of equity.
    """
    returns = np.asarray(returns, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)[: len(returns)]
    if returns.size == 0:
        raise ValueError("metrics need at least one return")
    if not np.isfinite(returns).all():
        raise ValueError("metrics need finite returns")
    growth = annual_return(returns, bars_per_year)
    drawdown = max_drawdown(returns)
    in_market = positions != 0
    changes = np.abs(np.diff(np.concatenate([[0.0], positions])))
    return {
        "total_return": float(np.prod(1.0 + returns) - 1.0),
        "annual_return": finite_or_none(growth),
        "annual_volatility": finite_or_none(annual_volatility(returns, bars_per_year)),
        "sharpe": finite_or_none(sharpe_ratio(returns, bars_per_year)),
        "sortino": finite_or_none(sortino_ratio(returns, bars_per_year)),
        "max_drawdown": drawdown,
        "calmar": finite_or_none(growth / drawdown) if drawdown > 0 else None,
        "win_rate": float((returns[in_market] > 0).mean()) if in_market.any() else None,
        "turnover": float(changes.mean()),
        "bars": int(returns.size),
        "bars_per_year": float(bars_per_year),
    }
