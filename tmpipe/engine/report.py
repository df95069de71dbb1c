"""The per-symbol performance report: what a quant reads before trusting a backtest.

One ``Track`` is a window of decision bars (close, position held from each close to the next);
the report covers each window (fold) and the windows pooled (their per-bar returns concatenated).
Ratios follow tmpipe.engine.metrics (empyrical's definitions); undefined ones are None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tmpipe.finite import finite_or_none
from tmpipe.engine.environment import equity_curve
from tmpipe.engine.metrics import annual_return, annual_volatility, max_drawdown, returns_from_equity, sharpe_ratio, sortino_ratio

REPORT_KEYS = (
    "total_return", "annual_return", "total_return_gross", "annual_return_gross", "excess_return",
    "information_ratio", "annual_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
    "max_drawdown_bars", "turnover", "cost_drag", "exposure", "win_rate", "profit_factor", "trades", "bars",
)


@dataclass(frozen=True)
class Track:
    """Decision bars of one window: ``positions[t]`` is held from ``close[t]`` to ``close[t + 1]``.

    The last bar's position earns nothing inside the window; every window starts flat, so its
    first position pays the entry cost.
    """

    close: np.ndarray
    positions: np.ndarray

    @property
    def asset_returns(self) -> np.ndarray:
        return self.close[1:] / self.close[:-1] - 1.0

    @property
    def held(self) -> np.ndarray:
        """Positions that earn the bar returns (one per return)."""
        return self.positions[:-1]

    def net_returns(self, cost_rate: float) -> np.ndarray:
        equity, _ = equity_curve(self.close, self.positions, cost_rate, 1.0)
        return returns_from_equity(equity)

    def gross_returns(self) -> np.ndarray:
        return self.held * self.asset_returns

    def trades(self) -> int:
        """Position changes, the entry from the flat start included."""
        return int(np.count_nonzero(np.diff(np.concatenate([[0.0], self.held]))))


def drawdown_bars(returns: np.ndarray) -> int:
    """Longest spell, in bars, that the compounded equity spent below its previous peak."""
    equity = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    underwater = equity < np.fmax.accumulate(equity)
    longest = current = 0
    for below in underwater:
        current = current + 1 if below else 0
        longest = max(longest, current)
    return longest


def report_metrics(net: np.ndarray, gross: np.ndarray, held: np.ndarray, benchmark: np.ndarray,
                   trades: int, bars_per_year: float) -> dict:
    """The report's figures for per-bar ``net`` returns (after costs), ``gross`` (before costs),
    the positions ``held`` over those bars and the buy-and-hold ``benchmark``'s net returns."""
    growth, growth_gross = annual_return(net, bars_per_year), annual_return(gross, bars_per_year)
    drawdown = max_drawdown(net)
    active = net - benchmark
    active_std = np.std(active, ddof=1) if active.size > 1 and active.max() != active.min() else 0.0
    in_market = held != 0
    gains, losses = net[in_market & (net > 0)].sum(), -net[in_market & (net < 0)].sum()
    return {
        "total_return": float(np.prod(1.0 + net) - 1.0),
        "annual_return": finite_or_none(growth),
        "total_return_gross": float(np.prod(1.0 + gross) - 1.0),
        "annual_return_gross": finite_or_none(growth_gross),
        "excess_return": float(np.prod(1.0 + net) - np.prod(1.0 + benchmark)),
        "information_ratio": finite_or_none(active.mean() / active_std * math.sqrt(bars_per_year)) if active_std > 0 else None,
        "annual_volatility": finite_or_none(annual_volatility(net, bars_per_year)),
        "sharpe": finite_or_none(sharpe_ratio(net, bars_per_year)),
        "sortino": finite_or_none(sortino_ratio(net, bars_per_year)),
        "calmar": finite_or_none(growth / drawdown) if drawdown > 0 else None,
        "max_drawdown": drawdown,
        "max_drawdown_bars": drawdown_bars(net),
        "turnover": float(np.abs(np.diff(np.concatenate([[0.0], held]))).mean()),
        "cost_drag": finite_or_none(growth_gross - growth),
        "exposure": float(np.abs(held).mean()),
        "win_rate": float((net[in_market] > 0).mean()) if in_market.any() else None,
        "profit_factor": finite_or_none(gains / losses) if losses > 0 else None,
        "trades": int(trades),
        "bars": int(net.size),
    }


def track_report(tracks: list[Track], benchmarks: list[Track], cost_rate: float, bars_per_year: float) -> dict:
    """``{"folds": [report per window], "pooled": report over all windows}``."""
    parts = []
    for track, bench in zip(tracks, benchmarks, strict=True):
        parts.append((track.net_returns(cost_rate), track.gross_returns(), track.held,
                      bench.net_returns(cost_rate), track.trades()))
    folds = [report_metrics(*part, bars_per_year) for part in parts]
    net, gross, held, bench_net = (np.concatenate([p[i] for p in parts]) for i in range(4))
    pooled = report_metrics(net, gross, held, bench_net, sum(p[4] for p in parts), bars_per_year)
    return {"folds": folds, "pooled": pooled}
