"""Shared fixtures: synthetic bars and one trained model per session."""

from __future__ import annotations

import pytest

from tmpipe.engine.defaults import default_config
from tmpipe.engine.demo import synthetic_series

SYMBOL = "SYN"


def _synthetic_config(**trademaster) -> dict:
    """~300 synthetic weekday bars and 2 epochs: the engine's fast test setting.

    One torch thread: on a busy 2-core machine two spinning threads make a tiny network's
    epochs up to 10x slower (benchmarks/README.md); results are the same either way.
    """
    return default_config(
        data={"source": "demo", "demo_series": "synthetic", "synthetic_rows": 300},
        trademaster={"epochs": 2, "torch_threads": 1, **trademaster},
    )


@pytest.fixture
def synthetic_config():
    return _synthetic_config


@pytest.fixture
def ohlc_frame():
    """120 weekday bars of a seeded random walk: date, open, high, low, close, adjcp."""
    return synthetic_series(SYMBOL, 120, seed=7)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(config, result, progress records) of one train_backtest run, shared by read-only tests."""
    from tmpipe.engine import train_backtest

    config = _synthetic_config()
    records = []
    result = train_backtest(config, symbol=SYMBOL, out_dir=tmp_path_factory.mktemp("run"), progress=records.append)
    return config, result, records
