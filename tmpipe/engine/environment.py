"""The trading environment's accounting, as array operations.

Rules (one bar = one step):
- At the close of bar t the agent picks an action; its target position p_t (a fraction of
  equity: -max_position, 0 or +max_position) is held from close t to close t+1.
- Trading costs (transaction_cost_pct + slippage_pct) * |p_t - p_{t-1}| * equity are paid
  at close t, before the position earns anything. Positions are re-targeted every bar, so
  drift between bars is not charged.
- equity_{t+1} = equity_t * (1 - cost_rate * |p_t - p_{t-1}|) * (1 + p_t * r_{t+1}), where
  r_{t+1} = close_{t+1} / close_t - 1.
- Equity never goes below 0: if a bar's growth factor is <= 0 (only a short can lose more
  than the whole equity, when the price gains 1/max_position or more in one bar) equity
  is floored at 0, the episode ends (ruin) and the position is flat from then on.
- Reward = log(equity_{t+1} / equity_t), floored at log(RUIN_GROWTH) on ruin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    from tmpipe.config.sections import TrademasterConfig

RUIN_GROWTH = 1e-6
ALL_ACTIONS = ("short", "flat", "long")


@dataclass(frozen=True)
class ActionSpace:
    """Action names and their target positions; short is left out when shorting is off."""

    names: tuple[str, ...]
    positions: np.ndarray  # target position per action index
    max_position: float

    @classmethod
    def of(cls, max_position: float, allow_short: bool) -> "ActionSpace":
        m = float(max_position)
        if allow_short:
            return cls(ALL_ACTIONS, np.array([-m, 0.0, m]), m)
        return cls(("flat", "long"), np.array([0.0, m]), m)

    @classmethod
    def from_config(cls, trademaster: "TrademasterConfig") -> "ActionSpace":
        return cls.of(trademaster.max_position, trademaster.allow_short)

    @classmethod
    def from_bundle(cls, metadata: Mapping[str, Any]) -> "ActionSpace":
        """The action space a saved model bundle was trained with (its JSON metadata)."""
        return cls.of(metadata["max_position"], metadata["allow_short"])

    @property
    def flat(self) -> int:
        return self.names.index("flat")

    def position_feature(self, index: np.ndarray) -> np.ndarray:
        """The position part of an observation, scaled to -1..1."""
        return self.positions[index] / self.max_position


def growth_factors(prev_position, position, price_return, cost_rate: float):
    """Per-step equity growth (cost then mark-to-market) before the zero floor; broadcasts."""
    return (1.0 - cost_rate * np.abs(position - prev_position)) * (1.0 + position * price_return)


def step_rewards(prev_position, position, price_return, cost_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Log-growth rewards and ruin flags of a batch of environments stepping together."""
    growth = growth_factors(prev_position, position, price_return, cost_rate)
    ruined = growth <= 0.0
    return np.log(np.maximum(growth, RUIN_GROWTH)), ruined


def equity_curve(close: np.ndarray, positions: np.ndarray, cost_rate: float, initial_cash: float):
    """Equity at each bar's close for positions decided at each bar, without a Python loop.

    Returns (equity, positions) where positions are forced flat after ruin. equity[0] is the
    initial cash; the last bar's position earns nothing yet (no next bar).
    """
    positions = np.asarray(positions, dtype=np.float64).copy()
    price_returns = close[1:] / close[:-1] - 1.0
    previous = np.concatenate([[0.0], positions[:-1]])
    growth = growth_factors(previous[:-1], positions[:-1], price_returns, cost_rate)
    ruined = np.flatnonzero(growth <= 0.0)
    if ruined.size:
        first = ruined[0]
        growth[first] = 0.0
        growth[first + 1 :] = 1.0
        positions[first + 1 :] = 0.0
    equity = initial_cash * np.concatenate([[1.0], np.cumprod(growth)])
    return equity, positions


def cost_rate(trademaster: "TrademasterConfig") -> float:
    """The spec's costs per unit of traded notional, as the backtest charges them."""
    return float(trademaster.transaction_cost_pct) + float(trademaster.slippage_pct)
