"""The review policy: thresholds that turn the inferred action into an approved or downgraded signal.

Pure functions over the evidence pack. The rules model speaks them; the guardrails enforce
them on whatever any model writes, so thresholds hold whichever provider is configured.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tmpipe.errors import ReviewError

if TYPE_CHECKING:
    from tmpipe.config.sections import ReviewConfig, TrackRecordConfig

# A session of 6.5 hours (390 minutes) per daily bar, for intraday horizons.
_BARS_PER_UNIT = {"m": 1 / 390, "h": 1 / 6.5, "d": 1.0}


@dataclass(frozen=True)
class Check:
    """One threshold check with the numbers it used."""

    name: str
    value: float | None
    limit: float
    passed: bool

    def describe(self) -> str:
        shown = "unknown" if self.value is None else f"{self.value:.4f}"
        relation = {"max_drawdown": "<=", "min_sharpe": ">=", "min_confidence": ">=", "min_hit_rate": ">=",
                    "max_skill_p_value": "<"}[self.name]
        label = {"max_drawdown": "test max drawdown", "min_sharpe": "test Sharpe", "min_confidence": "confidence",
                 "min_hit_rate": "hit rate of graded signals", "max_skill_p_value": "out-of-sample timing-skill p-value"}[self.name]
        words = " (no demonstrated skill)" if self.name == "max_skill_p_value" and not self.passed else ""
        return f"{label} {shown} {relation} {self.limit:.4f}: {'PASS' if self.passed else 'FAIL'}{words}"


@dataclass(frozen=True)
class PolicyDecision:
    """What the policy makes of the evidence: the action, why, and the protective levels."""

    implied_signal: str
    action: str
    status: str
    confidence: float
    checks: tuple[Check, ...]
    target_position: float
    reference_price: float | None
    stop_loss: float | None
    take_profit: float | None

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def downgrade_reason(self) -> str | None:
        if self.status != "downgraded":
            return None
        return "; ".join(check.describe() for check in self.failed)


def evaluate_policy(evidence: dict, review_config: ReviewConfig) -> PolicyDecision:
    """Apply max_drawdown, min_sharpe, min_confidence and max_skill_p_value to the inferred action.

    A model whose out-of-sample timing skill is not significant (or untested) gives HOLD.
    """
    thresholds = review_config.thresholds
    inference = evidence["inference"]
    test = evidence["backtest"]["test"]
    implied = inference["implied_signal"]
    confidence = inference["confidence"]
    drawdown, sharpe = test["max_drawdown"], test["sharpe"]
    p_value = (evidence["backtest"].get("evaluation") or {}).get("skill_p_value")
    skill_level = thresholds.max_skill_p_value
    checks = (
        Check("max_drawdown", drawdown, thresholds.max_drawdown,
              drawdown is not None and drawdown <= thresholds.max_drawdown),
        Check("min_sharpe", sharpe, thresholds.min_sharpe, sharpe is not None and sharpe >= thresholds.min_sharpe),
        Check("min_confidence", confidence, thresholds.min_confidence,
              confidence is not None and confidence >= thresholds.min_confidence),
        Check("max_skill_p_value", p_value, skill_level,
              p_value is not None and (p_value < skill_level or skill_level >= 1)),
    ) + _track_record_checks(evidence.get("track_record"), review_config.track_record)
    probabilities = inference["probabilities"] or {}
    if implied == "HOLD" or all(check.passed for check in checks):
        action, status = implied, "approved"
        confidence = confidence if confidence is not None else 0.0
    else:
        action, status = "HOLD", "downgraded"
        confidence = probabilities.get("flat", 0.0)
    reference = inference["reference_price"]
    position = _target_position(action, inference["target_position"])
    stop_loss, take_profit = protective_levels(
        action, reference, horizon_volatility(evidence, review_config.horizon),
        review_config.stop_loss_sigmas, review_config.take_profit_sigmas)
    return PolicyDecision(implied, action, status, round(float(confidence), 6), checks, position, reference,
                          stop_loss, take_profit)


def _track_record_checks(record: dict | None, settings: TrackRecordConfig) -> tuple[Check, ...]:
    """The hit-rate check once enough earlier signals were graded: a symbol doing worse than a coin is downgraded."""
    limit = settings.min_hit_rate
    if limit is None or not record or record["directional"] < settings.min_graded or record["hit_rate"] is None:
        return ()
    return (Check("min_hit_rate", record["hit_rate"], limit, record["hit_rate"] >= limit),)


def _parse_horizon(horizon: str) -> tuple[int, str]:
    match = re.fullmatch(r"([0-9]+)([mhdw])", horizon)
    if not match:
        raise ReviewError(f"review.horizon {horizon!r} is not like 5d, 4h, 30m or 2w")
    return int(match.group(1)), match.group(2)


def horizon_bars(horizon: str, bars_per_year: float) -> float:
    """Daily bars in a horizon such as ``5d``, ``4h``, ``30m`` or ``2w`` (a week is a 52nd of a year)."""
    count, unit = _parse_horizon(horizon)
    return count * (bars_per_year / 52 if unit == "w" else _BARS_PER_UNIT[unit])


def horizon_end(as_of: str | None, horizon: str, bars_per_year: float | None) -> str | None:
    """The time ``horizon`` after the bar ``as_of``, on the calendar of the symbol's data.

    ``d`` and ``w`` count trading days, as the data's daily bars do: every day for data with a
    whole multiple of 365 bars a year (crypto, weekends included), else weekdays; a week is 7
    or 5 of them. Exchange holidays are unknown, so on weekday data the end may land on one.
    ``m`` and ``h`` are clock time from the bar. None when as_of or the calendar is unknown.
    """
    if not as_of or not bars_per_year:
        return None
    count, unit = _parse_horizon(horizon)
    try:
        stamp = np.datetime64(as_of.removesuffix("Z"))
    except ValueError:
        return None
    if unit in ("m", "h"):
        end = stamp + np.timedelta64(count, "m" if unit == "m" else "h")
    else:
        seven_day = any(_whole_multiple(bars_per_year, days_a_year) for days_a_year in (365.0, 365.25))
        days = count * ((7 if seven_day else 5) if unit == "w" else 1)
        day = stamp.astype("datetime64[D]")
        end_day = day + np.timedelta64(days, "D") if seven_day else np.busday_offset(day, days, roll="forward")
        end = end_day + (stamp - day)
    unit = np.datetime_data(end.dtype)[0]  # as precise as the bar's timestamp; times to the second at least
    # datetime_data gives the unit as str; numpy's stubs want one of its unit literals.
    return str(np.datetime_as_string(end, unit="s" if unit in ("h", "m") else unit))  # type: ignore[call-overload]


def _whole_multiple(value: float, unit: float) -> bool:
    ratio = value / unit
    return round(ratio) >= 1 and abs(ratio - round(ratio)) < 1e-3 * ratio


def horizon_volatility(evidence: dict, horizon: str) -> float | None:
    """Expected return standard deviation over the horizon (20-bar realised vol, else test vol).

    Annualised figures are scaled back with the data's own bars per year (252 for weekday
    bars, 365 for crypto), never a fixed 252.
    """
    test = evidence["backtest"]["test"]
    annual = evidence["market"]["realised_volatility_20d"] or test["annual_volatility"]
    bars_per_year = test["bars_per_year"]
    if annual is None or not bars_per_year:
        return None
    return annual * math.sqrt(horizon_bars(horizon, bars_per_year) / bars_per_year)


def protective_levels(action: str, reference: float | None, volatility: float | None,
                      stop_sigmas: float, take_sigmas: float) -> tuple[float | None, float | None]:
    """Stop loss and take profit ``sigmas`` horizon-volatilities away from the reference price."""
    if action == "HOLD" or reference is None or volatility is None:
        return None, None
    direction = 1 if action == "BUY" else -1
    stop = reference * (1 - direction * stop_sigmas * volatility)
    take = reference * (1 + direction * take_sigmas * volatility)
    return round(stop, 4), round(take, 4)


def _target_position(action: str, inferred: float | None) -> float:
    if action == "HOLD":
        return 0.0
    size = min(abs(inferred), 1.0) if inferred else 1.0
    return size if action == "BUY" else -size
