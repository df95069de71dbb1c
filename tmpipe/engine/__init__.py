"""TradeMaster algorithmic-trading engine: ``train_backtest``, ``infer`` and ``load_bars``.

The public functions are imported lazily so that importing tmpipe.engine (e.g. at DAG parse
time) does not load torch or pandas.
"""

from __future__ import annotations

__all__ = ["train_backtest", "infer", "load_bars"]


def __getattr__(name: str):
    if name in ("train_backtest", "infer"):
        from tmpipe.engine import api

        return getattr(api, name)
    if name == "load_bars":
        from tmpipe.engine.data import load_bars

        return load_bars
    raise AttributeError(f"module 'tmpipe.engine' has no attribute {name!r}")
