"""Stop-loss distances scale annual volatility back with the data's own bars per year."""

import math

import pytest

from tmpipe.errors import ReviewError
from tmpipe.review.policy import horizon_bars, horizon_volatility


def evidence(bars_per_year, realised=0.4):
    return {"market": {"realised_volatility_20d": realised}, "backtest": {"test": {"annual_volatility": 0.3, "bars_per_year": bars_per_year}}}


def test_five_daily_bars_of_weekday_and_crypto_data():
    assert horizon_volatility(evidence(252), "5d") == pytest.approx(0.4 * math.sqrt(5 / 252))
    assert horizon_volatility(evidence(365), "5d") == pytest.approx(0.4 * math.sqrt(5 / 365))


def test_a_week_is_a_52nd_of_the_year_whatever_the_calendar():
    assert horizon_bars("2w", 252) == pytest.approx(2 * 252 / 52)
    assert horizon_volatility(evidence(365), "1w") == pytest.approx(0.4 * math.sqrt(1 / 52))


def test_unknown_bars_per_year_gives_no_levels_rather_than_a_guess():
    assert horizon_volatility(evidence(None), "5d") is None


def test_bad_horizon_is_rejected():
    with pytest.raises(ReviewError, match="not like 5d"):
        horizon_bars("5y", 252)
