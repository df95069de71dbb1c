"""Offline demo bars: real daily indices shipped by ``arch``, or seeded synthetic series.

Two synthetic series have a known answer, for checking that evaluation and learner are honest:
``planted`` (AR(1) daily returns with coefficient 0.25: yesterday's return predicts today's,
an edge the features expose) and ``random_walk`` (independent returns: nothing to learn).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from tmpipe.errors import DataError

# Regimes of the synthetic walk: (daily drift, daily volatility); a Markov chain switches
# between them so the series has trends and calm/volatile spells an agent can learn from.
_REGIMES = np.array([[0.0008, 0.009], [-0.0007, 0.016], [0.0, 0.006]])
_STAY_PROBABILITY = 0.97


ARCH_SERIES = ("sp500", "nasdaq")


def arch_csv(name: str) -> Path:
    """The file ``arch.data.<name>.load()`` reads, found without importing arch.

    Importing arch loads scipy.stats and more: 1.1-1.3 s of CPU in every task that reads demo
    bars (python -X importtime), to read one CSV.
    """
    if name not in ARCH_SERIES:
        raise DataError(f"unknown arch demo series {name!r}; valid: {', '.join(ARCH_SERIES)}")
    spec = importlib.util.find_spec("arch")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the demo series need the arch package")
    return Path(spec.submodule_search_locations[0]) / "data" / name / f"{name}.csv.gz"


def arch_series(name: str) -> pd.DataFrame:
    """Daily OHLC bars of the S&P 500 or NASDAQ index (1999-2018) from the arch package."""
    raw = pd.read_csv(arch_csv(name))  # read as arch.data.utility.load_file reads it

    def column(key: str) -> np.ndarray:
        return pd.to_numeric(raw[key], errors="coerce").to_numpy(float)

    return pd.DataFrame(
        {
            "date": pd.DatetimeIndex(pd.to_datetime(raw["Date"])).as_unit("ns"),
            "open": column("Open"),
            "high": column("High"),
            "low": column("Low"),
            "close": column("Close"),
            "adjcp": column("Adj Close"),
        }
    )


PLANTED_COEFFICIENT = 0.25
KNOWN_ANSWER_VOLATILITY = 0.01  # daily standard deviation of the returns


def _rng(symbol: str, seed: int, salt: int = 0) -> np.random.Generator:
    symbol_key = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, symbol_key, salt] if salt else [seed, symbol_key])


def _bars_from_returns(returns: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Weekday OHLC bars whose close moves by ``returns``; the open is the previous close."""
    close = 100.0 * np.cumprod(1.0 + returns)
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.standard_normal((2, len(returns)))) * KNOWN_ANSWER_VOLATILITY * 0.3
    return pd.DataFrame({
        "date": pd.bdate_range("2010-01-01", periods=len(returns)).as_unit("ns"),
        "open": open_, "high": np.maximum(open_, close) * (1 + wick[0]), "low": np.minimum(open_, close) * (1 - wick[1]),
        "close": close, "adjcp": close,
    })


def known_answer_series(kind: str, symbol: str, rows: int, seed: int) -> pd.DataFrame:
    """``planted``: AR(1) returns, coefficient 0.25; ``random_walk``: independent returns; both with
    a 1 % daily standard deviation and no drift, reproducible per (seed, symbol)."""
    coefficient = {"planted": PLANTED_COEFFICIENT, "random_walk": 0.0}[kind]
    rng = _rng(symbol, seed, salt=1 if kind == "planted" else 2)
    innovations = rng.standard_normal(rows) * KNOWN_ANSWER_VOLATILITY * np.sqrt(1.0 - coefficient**2)
    returns = np.empty(rows)
    returns[0] = innovations[0] / np.sqrt(1.0 - coefficient**2)
    for t in range(1, rows):
        returns[t] = coefficient * returns[t - 1] + innovations[t]
    return _bars_from_returns(returns, rng)


def synthetic_series(symbol: str, rows: int, seed: int) -> pd.DataFrame:
    """Weekday bars of a regime-switching geometric random walk, reproducible per (seed, symbol)."""
    rng = _rng(symbol, seed)
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
