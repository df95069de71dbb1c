"""Greedy policy rollouts over a split: positions, equity curves and metrics."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tmpipe.engine.data import SplitBars, iso
from tmpipe.engine.environment import ActionSpace, equity_curve
from tmpipe.engine.metrics import compute_metrics, returns_from_equity


@dataclass(frozen=True)
class Rollout:
    """A greedy pass over the decision bars of one split (bars after the warm-up)."""

    dates: np.ndarray  # datetime64[ns]
    close: np.ndarray
    actions: np.ndarray  # action index per decision bar (flat after ruin)
    positions: np.ndarray
    equity: np.ndarray
    q_values: np.ndarray  # (bars, actions) at the position actually held

    @property
    def returns(self) -> np.ndarray:
        return returns_from_equity(self.equity)


def greedy_actions(q: np.ndarray, start_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Follow argmax Q from a flat start; q is (bars, positions, actions), position = last action.

    The best action for every (bar, position) pair is computed in one array op; the loop
    only chains the integer choices.
    """
    best = q.argmax(axis=2)
    actions = np.empty(len(q), dtype=np.int64)
    held = start_index
    for t in range(len(q)):
        held = actions[t] = best[t, held]
    previous = np.concatenate([[start_index], actions[:-1]])
    return actions, q[np.arange(len(q)), previous]


def rollout(q: np.ndarray, split: SplitBars, lookback: int, space: ActionSpace, cost_rate: float,
            initial_cash: float) -> Rollout:
    decisions = split.bars.rows(slice(lookback - 1, None))
    close = decisions["close"]
    actions, q_held = greedy_actions(q, space.flat)
    equity, positions = equity_curve(close, space.positions[actions], cost_rate, initial_cash)
    actions = np.where(positions == space.positions[actions], actions, space.flat)  # flat after ruin
    return Rollout(decisions["date"], close, actions, positions, equity, q_held)


def rollout_metrics(result: Rollout, bars_per_year: float) -> dict:
    return compute_metrics(result.returns, result.positions[:-1], bars_per_year)


def buy_and_hold(result: Rollout, cost_rate: float, initial_cash: float) -> tuple[np.ndarray, np.ndarray]:
    """Fully invested from the first decision bar, paying the same entry cost."""
    return equity_curve(result.close, np.ones_like(result.close), cost_rate, initial_cash)


EQUITY_CURVE_FILE = "equity_curve.csv"


def write_equity_curve(path: Path, dates: np.ndarray, columns: dict[str, np.ndarray]) -> Path:
    """The test split's curve, one row per decision bar: date, then ``columns`` in order.

    Both backends write it (the builtin: close, position, equity, buy_and_hold; upstream adds
    its units and its own equity). Floats are written as repr (round-trip exact); NaN as an
    empty cell, which every CSV reader takes as missing.
    """
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", *columns])
        cells = ([("" if v != v else v) for v in np.asarray(values, dtype=np.float64).tolist()] for values in columns.values())
        writer.writerows(zip([iso(d) for d in dates], *cells, strict=True))
    return path
