"""Offline demo bars: real daily indices shipped by ``arch``, or a seeded synthetic series."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from tmpipe.errors import DataError

# Regimes of the synthetic walk: (daily drift, daily volatility); a Markov chain switches
# between them so the series has trends and calm/volatile spells an agent can learn from.
_REGIMES = np.array([[0.0008, 0.009], [-0.0007, 0.016], [0.0, 0.006]])
_STAY_PROBABILITY = 0.97


def arch_series(name: str) -> pd.DataFrame:
    """Daily OHLC bars of the S&P 500 or NASDAQ index (1999-2018) from the arch package."""
    if name == "sp500":
        from arch.data import sp500 as dataset
    elif name == "nasdaq":
        from arch.data import nasdaq as dataset
    else:
        raise DataError(f"unknown arch demo series {name!r}; valid: sp500, nasdaq")
    raw = dataset.load()
    return pd.DataFrame(
        {
            "date": pd.DatetimeIndex(raw.index).as_unit("ns"),
            "open": raw["Open"].to_numpy(float),
            "high": raw["High"].to_numpy(float),
            "low": raw["Low"].to_numpy(float),
            "close": raw["Close"].to_numpy(float),
            "adjcp": raw["Adj Close"].to_numpy(float),
        }
    )


def synthetic_series(symbol: str, rows: int, seed: int) -> pd.DataFrame:
    """Weekday bars of a regime-switching geometric random walk, reproducible per (seed, symbol)."""
    symbol_key = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    rng = np.random.default_rng([seed, symbol_key])
    regime = np.empty(rows, dtype=int)
    regime[0] = rng.integers(len(_REGIMES))
    switches = rng.random(rows) > _STAY_PROBABILITY
    jumps = rng.integers(1, len(_REGIMES), size=rows)
    for t in range(1, rows):
        regime[t] = (regime[t - 1] + jumps[t]) % len(_REGIMES) if switches[t] else regime[t - 1]
    drift, vol = _REGIMES[regime, 0], _REGIMES[regime, 1]
    log_returns = drift - 0.5 * vol**2 + vol * rng.standard_normal(rows)
    close = 100.0 * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(0.2 * vol * rng.standard_normal(rows))
    wick = np.abs(rng.standard_normal((2, rows))) * vol * 0.5
    return pd.DataFrame(
        {
            "date": pd.bdate_range("2015-01-01", periods=rows).as_unit("ns"),
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(wick[0]),
            "low": np.minimum(open_, close) * np.exp(-wick[1]),
            "close": close,
            "adjcp": close,
        }
    )
