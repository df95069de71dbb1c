"""The trainer's turnover penalty: shapes training rewards only."""

import numpy as np

from tmpipe.engine.data import load_dataset
from tmpipe.engine.features import observation_windows
from tmpipe.engine.trainer import evaluate, switch_penalty_per_unit, train


def _train_split_turnover(config: dict) -> float:
    dataset = load_dataset(config["data"], "SYN")
    outcome = train(dataset, config)
    lookback = config["data"]["lookback"]
    windows = observation_windows(dataset.splits["train"].bars, outcome.stats, lookback)
    _, metrics = evaluate(outcome.network, windows, outcome.space, dataset.splits["train"], lookback,
                          config["trademaster"], dataset.bars_per_year)
    return metrics["turnover"]


def test_penalty_is_in_units_of_the_bars_return_std():
    returns = np.array([0.01, -0.03, 0.02, 0.0])
    assert switch_penalty_per_unit({"switch_penalty": 2.0}, returns) == 2.0 * np.std(returns)
    assert switch_penalty_per_unit({"switch_penalty": 0.0}, returns) == 0.0


def test_a_larger_penalty_learns_policies_that_trade_less_on_their_training_bars(synthetic_config):
    # Over six seeds, not one: a single short run's selected network can still churn (seed 4
    # here trades on most bars with the penalty), so one seed would test luck, not the penalty.
    def median_turnover(penalty: float) -> float:
        return float(np.median([
            _train_split_turnover(synthetic_config(switch_penalty=penalty, seed=seed, epochs=5, early_stopping_patience=5))
            for seed in range(6)]))

    assert median_turnover(2.0) < 0.5 * median_turnover(0.0)
