"""Grading a signal against what the market did next, and a symbol's track record.

Pure functions over plain dicts and arrays. A signal for bar ``as_of`` with horizon ``h`` is
graded once the symbol's data holds the bar ``h`` bars after it (bars of the data itself,
see :func:`horizon_in_bars`), and only from bars up to that one and up to the grading time.
Following one signal means holding ``target_position`` from the close of ``as_of`` to the close
of the horizon's last bar, paying ``cost_rate`` per unit of notional on entry and on exit (its
``pnl``); following a series of them pays only for position changes (:func:`following_values`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tmpipe.review.policy import horizon_bars

DIRECTION = {"BUY": 1, "SELL": -1, "HOLD": 0}
SCORE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PriceSeries:
    """A symbol's bars as known at grading time: timestamps (datetime64) and closes, oldest first."""

    dates: np.ndarray
    close: np.ndarray
    bars_per_year: float

    def known_at(self, graded_at: np.datetime64 | None) -> "PriceSeries":
        """Only the bars that existed at ``graded_at`` (all of them when None)."""
        if graded_at is None:
            return self
        keep = self.dates <= graded_at
        return PriceSeries(self.dates[keep], self.close[keep], self.bars_per_year)


def horizon_in_bars(horizon: str, bars_per_year: float) -> int:
    """The horizon counted in bars of the data: ``5d`` is 5 daily bars, 35 bars of 7-per-day data."""
    seven_day = abs(bars_per_year / 365.0 - round(bars_per_year / 365.0)) < 1e-3 * bars_per_year / 365.0
    trading_days = 365.0 if seven_day and bars_per_year >= 360 else 252.0
    bars_per_day = max(1.0, bars_per_year / trading_days) if bars_per_year > trading_days * 1.01 else 1.0
    return max(1, int(round(horizon_bars(horizon, bars_per_year) * bars_per_day)))


def bar_index(series: PriceSeries, as_of: str) -> int | None:
    """Index of the bar ``as_of`` names: the last bar at or before it, None when it precedes the data."""
    stamp = np.datetime64(as_of.removesuffix("Z"))
    index = int(np.searchsorted(series.dates, stamp, side="right")) - 1
    return index if index >= 0 else None


def grade(signal: dict, series: PriceSeries, *, cost_rate: float) -> dict | None:
    """The score of one signal, or None while its horizon has not fully elapsed in ``series``."""
    if not signal.get("as_of"):
        return None
    start = bar_index(series, signal["as_of"])
    if start is None:
        return None
    bars = horizon_in_bars(signal["horizon"], series.bars_per_year)
    end = start + bars
    if end >= len(series.close):
        return None
    entry, exit_ = float(series.close[start]), float(series.close[end])
    forward = exit_ / entry - 1.0
    direction = DIRECTION[signal["action"]]
    position = float(signal["target_position"])
    pnl = position * forward - abs(position) * cost_rate * 2
    directional = direction != 0
    right = (direction * forward > 0) if directional else None
    return {
        "as_of": signal["as_of"],
        "horizon": signal["horizon"],
        "horizon_bars": bars,
        "horizon_end_bar": _iso(series.dates[end]),
        "entry_close": entry,
        "exit_close": exit_,
        "forward_return": forward,
        "action": signal["action"],
        "confidence": float(signal["confidence"]),
        "target_position": position,
        "direction_right": right,
        "pnl": pnl,
        "buy_and_hold_pnl": forward - cost_rate * 2,
        "cost_rate": cost_rate,
        "brier": (float(signal["confidence"]) - float(right)) ** 2 if right is not None else None,
    }


def track_record(scores: list[dict], *, window: int) -> dict:
    """A symbol's record over its graded signals, oldest first.

    ``hit_rate`` and ``brier`` count directional (BUY/SELL) signals only; ``ic`` is the Spearman
    correlation of signed confidence with the forward return (None under 3 signals or no
    spread); ``cumulative_pnl`` is what following the signals made (:func:`following_values`)
    against ``buy_and_hold``, a long position over the same bars.
    """
    ordered = sorted(scores, key=lambda s: s["as_of"])
    directional = [s for s in ordered if s["direction_right"] is not None]
    hits = [float(s["direction_right"]) for s in directional]
    signed = np.array([DIRECTION[s["action"]] * s["confidence"] for s in ordered])
    forward = np.array([s["forward_return"] for s in ordered])
    return {
        "graded": len(ordered),
        "directional": len(directional),
        "hit_rate": _mean(hits),
        "rolling_hit_rate": _mean(hits[-window:]),
        "rolling_window": window,
        "brier": _mean([s["brier"] for s in directional]),
        "ic": spearman(signed, forward),
        "cumulative_pnl": float(following_values(ordered)[-1] - 1) if ordered else 0.0,
        "buy_and_hold": float(following_values(ordered, long_only=True)[-1] - 1) if ordered else 0.0,
        "first_as_of": ordered[0]["as_of"] if ordered else None,
        "last_as_of": ordered[-1]["as_of"] if ordered else None,
    }


def following_values(ordered: list[dict], *, long_only: bool = False) -> np.ndarray:
    """Value of 1 after each graded signal, holding its position over its horizon, oldest first.

    Costs are paid on position changes only: a signal whose horizon starts where the previous
    one ended keeps the position it shares with it; after a gap the position is closed first.
    ``long_only`` holds +1 throughout, buy-and-hold over the same bars with the same costs.
    """
    value, held, last_end, values = 1.0, 0.0, None, []
    for score in ordered:
        position = 1.0 if long_only else score["target_position"]
        rate = score["cost_rate"]
        if last_end != score["as_of"]:
            value *= 1 - abs(held) * rate
            held = 0.0
        value *= (1 - abs(position - held) * rate) * (1 + position * score["forward_return"])
        held, last_end = position, score["horizon_end_bar"]
        values.append(value)
    if values:
        values[-1] = value * (1 - abs(held) * ordered[-1]["cost_rate"])
    return np.array(values)


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    import pandas as pd

    value = float(pd.Series(x).rank().corr(pd.Series(y).rank()))
    return None if math.isnan(value) else value


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _iso(stamp: np.datetime64) -> str:
    text = str(np.datetime_as_string(stamp, unit="s"))
    return text.removesuffix("T00:00:00")
