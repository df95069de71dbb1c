"""The trainer's reward shaping (turnover penalty, hindsight bonus): training rewards only."""

import numpy as np

from tmpipe.config.sections import EngineConfig, TrademasterConfig
from tmpipe.engine.data import load_dataset
from tmpipe.engine.features import observation_windows
from tmpipe.engine.trainer import evaluate, hindsight_moves, switch_penalty_per_unit, train


def _train_split_turnover(config: EngineConfig) -> float:
    dataset = load_dataset(config.data, "SYN")
    outcome = train(dataset, config)
    lookback = config.data.lookback
    windows = observation_windows(dataset.splits["train"].bars, outcome.stats, lookback)
    _, metrics = evaluate(outcome.network, windows, outcome.space, dataset.splits["train"], lookback,
                          config.trademaster, dataset.bars_per_year)
    return metrics["turnover"]


def test_penalty_is_in_units_of_the_bars_return_std():
    returns = np.array([0.01, -0.03, 0.02, 0.0])
    assert switch_penalty_per_unit(TrademasterConfig.from_values({"switch_penalty": 2.0}), returns) == 2.0 * np.std(returns)
    assert switch_penalty_per_unit(TrademasterConfig.from_values({"switch_penalty": 0.0}), returns) == 0.0


def test_hindsight_moves_look_ahead_from_each_transition_and_stop_at_the_last_bar():
    close = np.array([100.0, 110.0, 99.0, 121.0])
    # Transitions 0..2; horizon 2: 0 -> bar 2, 1 -> bar 3, 2 -> bar 3 (the split ends there).
    np.testing.assert_allclose(hindsight_moves(close, 2), [99 / 100 - 1, 121 / 110 - 1, 121 / 99 - 1])
    np.testing.assert_allclose(hindsight_moves(close, 1), close[1:] / close[:-1] - 1)


def test_a_larger_penalty_learns_policies_that_trade_less_on_their_training_bars(synthetic_config):
    # Over six seeds, not one: a single short run's selected network can still churn (seed 4
    # here trades on most bars with the penalty), so one seed would test luck, not the penalty.
    # The hindsight bonus is off: on 300 random-walk bars its own effect on turnover swamps the
    # penalty's, and this test is about the penalty.
    def median_turnover(penalty: float) -> float:
        return float(np.median([
            _train_split_turnover(synthetic_config(switch_penalty=penalty, hindsight_weight=0.0, seed=seed, epochs=5,
                                                   early_stopping_patience=5))
            for seed in range(6)]))

    assert median_turnover(2.0) < 0.5 * median_turnover(0.0)
