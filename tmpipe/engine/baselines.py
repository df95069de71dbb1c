"""Baseline strategies every result is measured against: buy-and-hold, always flat, MA crossover.

Each returns one target position per decision bar of a window, decided causally from closes up
to that bar (the crossover uses the whole history before the window, so it needs no warm-up
inside it). The same accounting (tmpipe.engine.environment.equity_curve) and costs as the agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tmpipe.engine.features import trailing_mean

if TYPE_CHECKING:
    from tmpipe.config.sections import EvaluationConfig

BASELINES = ("buy_and_hold", "flat", "ma_crossover")


def ma_crossover_positions(close: np.ndarray, fast: int, slow: int, allow_short: bool) -> np.ndarray:
    """+1 while the fast simple moving average is above the slow one, else 0 (or -1 with shorts).

    Bars before the slow window is full hold 0: the crossover is not defined there.
    """
    if not 1 <= fast < slow:
        raise ValueError(f"moving-average crossover needs 1 <= fast < slow, got fast={fast}, slow={slow}")
    close = np.asarray(close, dtype=np.float64)
    above = trailing_mean(close, fast) > trailing_mean(close, slow)
    positions = np.where(above, 1.0, -1.0 if allow_short else 0.0)
    positions[: slow - 1] = 0.0
    return positions


def baseline_positions(name: str, close_history: np.ndarray, window: slice, settings: EvaluationConfig) -> np.ndarray:
    """Positions of baseline ``name`` over ``close_history[window]`` (decision bars of one window)."""
    bars = len(close_history[window])
    if name == "buy_and_hold":
        return np.ones(bars)
    if name == "flat":
        return np.zeros(bars)
    if name == "ma_crossover":
        full = ma_crossover_positions(close_history, settings.ma_fast, settings.ma_slow, settings.ma_allow_short)
        return full[window]
    raise ValueError(f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}")


def baseline_parameters(name: str, settings: EvaluationConfig) -> dict:
    if name == "ma_crossover":
        return {"fast": settings.ma_fast, "slow": settings.ma_slow, "allow_short": settings.ma_allow_short}
    return {}
