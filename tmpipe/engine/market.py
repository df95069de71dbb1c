"""Recent market statistics of a close series: the one implementation behind the inference
result's ``market`` block (both backends) and the reviewers' evidence pack."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MARKET_KEYS = ("last_close", "return_1d", "return_20d", "realised_volatility_20d", "trend_slope_20d")


def market_summary(close: Sequence[float] | np.ndarray, bars_per_year: float) -> dict:
    """Statistics of the last (up to) 20 bars; the trend slope is per bar, of log closes.

    An empty series gives every key as None.
    """
    close = np.asarray(close, dtype=float)
    if len(close) == 0:
        return dict.fromkeys(MARKET_KEYS)
    log_close = np.log(close[-21:])
    log_returns = np.diff(log_close)
    recent = log_close[-20:]
    slope = float(np.polyfit(np.arange(len(recent)), recent, 1)[0]) if len(recent) >= 2 else 0.0
    return {
        "last_close": float(close[-1]),
        "return_1d": float(close[-1] / close[-2] - 1.0) if len(close) >= 2 else 0.0,
        "return_20d": float(close[-1] / close[-min(21, len(close))] - 1.0),
        "realised_volatility_20d": float(log_returns.std(ddof=1) * np.sqrt(bars_per_year)) if len(log_returns) >= 2 else 0.0,
        "trend_slope_20d": slope,
    }
