"""Grading against a series whose right answers are known in advance."""

from __future__ import annotations

import numpy as np
import pytest

from tmpipe.signals.scoring import grade, horizon_in_bars, track_record

from .conftest import HORIZON_BARS, make_signal

COST = 0.0015


@pytest.mark.parametrize("foresight, hit_rate", [("perfect", 1.0), ("inverted", 0.0)])
def test_foresight_gives_the_known_hit_rate_and_pnl(series, foresight, hit_rate):
    indices = range(0, len(series.close) - HORIZON_BARS, HORIZON_BARS)
    moves = [series.close[i + HORIZON_BARS] / series.close[i] - 1 for i in indices]
    # Confidence grows with the size of the move, so signed confidence ranks the moves exactly.
    confidences = [0.5 + min(0.49, 10 * abs(m)) for m in moves]
    scores = [grade(make_signal("SPX", series, i, foresight=foresight, confidence=c), series, cost_rate=COST)
              for i, c in zip(indices, confidences)]
    expected_pnl = [(abs(m) if foresight == "perfect" else -abs(m)) - 2 * COST for m in moves]
    assert [s["pnl"] for s in scores] == pytest.approx(expected_pnl)
    record = track_record(scores, window=5)
    assert record["hit_rate"] == hit_rate and record["rolling_hit_rate"] == hit_rate
    assert record["graded"] == len(moves) == 15
    # Back-to-back signals: costs only where the position changes, and on the first entry and last exit.
    positions = [1.0 if (m > 0) == (foresight == "perfect") else -1.0 for m in moves]
    held, value = 0.0, 1.0
    for position, move in zip(positions, moves):
        value *= (1 - COST * abs(position - held)) * (1 + position * move)
        held = position
    assert record["cumulative_pnl"] == pytest.approx(value * (1 - COST) - 1)
    assert record["buy_and_hold"] == pytest.approx((1 - COST) ** 2 * np.prod([1 + m for m in moves]) - 1)
    assert record["brier"] == pytest.approx(np.mean([(c - hit_rate) ** 2 for c in confidences]))
    assert record["ic"] == pytest.approx(1.0 if foresight == "perfect" else -1.0)


def test_nothing_is_graded_before_its_horizon_has_elapsed(series):
    last = len(series.close) - 1
    for index in range(last - HORIZON_BARS + 1, last + 1):
        assert grade(make_signal("SPX", series, index, foresight="perfect"), series, cost_rate=COST) is None
    signal = make_signal("SPX", series, 10, foresight="perfect")
    assert grade(signal, series.known_at(series.dates[10 + HORIZON_BARS - 1]), cost_rate=COST) is None
    graded = grade(signal, series.known_at(series.dates[10 + HORIZON_BARS]), cost_rate=COST)
    assert graded["horizon_end_bar"] == str(np.datetime_as_string(series.dates[15], unit="D"))
    # Bars after the horizon's end (known later) do not change the grade.
    assert grade(signal, series, cost_rate=COST) == graded


def test_a_gap_between_signals_closes_the_position(series):
    scores = [grade(make_signal("SPX", series, i, foresight="perfect"), series, cost_rate=COST) for i in (0, 10)]
    record = track_record(scores, window=5)
    assert record["buy_and_hold"] == pytest.approx((1 - COST) ** 4 * np.prod([1 + s["forward_return"] for s in scores]) - 1)


def test_hold_is_graded_without_a_direction(series):
    signal = {**make_signal("SPX", series, 0, foresight="perfect"), "action": "HOLD", "target_position": 0.0,
              "stop_loss": None, "take_profit": None}
    score = grade(signal, series, cost_rate=COST)
    assert (score["direction_right"], score["brier"], score["pnl"]) == (None, None, 0.0)


@pytest.mark.parametrize("horizon, bars_per_year, bars", [("5d", 252, 5), ("1w", 252, 5), ("5d", 365, 5),
                                                          ("1d", 252 * 7, 7), ("2h", 252 * 7, 2)])
def test_horizon_counts_bars_of_the_data(horizon, bars_per_year, bars):
    assert horizon_in_bars(horizon, bars_per_year) == bars
