"""The environment's accounting on tiny examples worked out by hand."""

import numpy as np
import pytest

from tmpipe.engine.environment import RUIN_GROWTH, ActionSpace, equity_curve, step_rewards
from tmpipe.config.sections import TrademasterConfig

COST = 0.001 + 0.0005  # transaction_cost_pct + slippage_pct


def test_equity_curve_charges_costs_on_position_changes():
    close = np.array([100.0, 110.0, 99.0, 99.0])
    positions = np.array([1.0, 1.0, -1.0, 0.0])  # long, long, short, flat
    equity, held = equity_curve(close, positions, COST, 1000.0)
    # bar 0: buy 1.0 from flat: cost 0.0015*1*1000 = 1.5 -> 998.5; price +10% -> 998.5*1.1 = 1098.35
    # bar 1: hold long, no cost; price 110->99 is -10% -> 1098.35*0.9 = 988.515
    # bar 2: long -> short changes 2.0: cost 0.0015*2*988.515 = 2.965545 -> 985.549455; price flat
    # bar 3: the last decision (flat) earns nothing: no next bar
    assert equity == pytest.approx([1000.0, 1098.35, 988.515, 985.549455], abs=1e-9)
    assert held.tolist() == [1.0, 1.0, -1.0, 0.0]


def test_a_short_that_loses_everything_floors_equity_at_zero_and_goes_flat():
    close = np.array([100.0, 250.0, 300.0, 200.0])
    equity, held = equity_curve(close, np.array([-1.0, -1.0, 1.0, 1.0]), COST, 1000.0)
    # bar 0: (1 - 0.0015) * (1 - 1.5) = -0.49925 <= 0 -> ruin: equity 0, flat afterwards
    assert equity.tolist() == [1000.0, 0.0, 0.0, 0.0]
    assert held.tolist() == [-1.0, 0.0, 0.0, 0.0]
    assert (equity >= 0).all()


def test_half_position_short_survives_a_150_percent_rally():
    equity, _ = equity_curve(np.array([100.0, 250.0]), np.array([-0.5, 0.0]), COST, 1000.0)
    # cost 0.0015*0.5*1000 = 0.75 -> 999.25; short half: 1 - 0.5*1.5 = 0.25 -> 249.8125
    assert equity.tolist() == pytest.approx([1000.0, 249.8125])


def test_step_rewards_are_log_growth_and_flag_ruin():
    reward, ruined = step_rewards(np.array([0.0, 1.0, 0.0]), np.array([1.0, 1.0, -1.0]),
                                  np.array([0.1, -0.1, 2.0]), COST)
    assert reward[0] == pytest.approx(np.log(0.9985 * 1.1))
    assert reward[1] == pytest.approx(np.log(0.9))
    assert reward[2] == pytest.approx(np.log(RUIN_GROWTH))
    assert ruined.tolist() == [False, False, True]


def test_action_space_follows_allow_short_and_max_position():
    config = TrademasterConfig.from_values({"max_position": 0.5})
    assert ActionSpace.from_config(config).positions.tolist() == [-0.5, 0.0, 0.5]
    long_only = ActionSpace.from_config(config.model_copy(update={"allow_short": False}))
    assert long_only.names == ("flat", "long")
    assert long_only.positions.tolist() == [0.0, 0.5]
    assert long_only.position_feature(np.array([0, 1])).tolist() == [0.0, 1.0]
