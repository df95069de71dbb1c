"""Walk-forward folds, baselines, the per-symbol report and the skill test, on small data."""

from __future__ import annotations

import numpy as np
import pytest

from tmpipe.engine.baselines import baseline_positions, ma_crossover_positions
from tmpipe.config.sections import EvaluationConfig, TrademasterConfig
from tmpipe.engine.defaults import default_config
from tmpipe.engine.report import Track, drawdown_bars, track_report
from tmpipe.engine.skill import _sharpe_rows, circular_shift_test, deflated_sharpe, net_returns, bootstrap_sharpes
from tmpipe.engine.walkforward import fold_bounds, run_walk_forward
from tmpipe.engine.data import load_dataset
from tmpipe.errors import DataError

COST = 0.0015


def ar1_returns(rng: np.random.Generator, bars: int, coefficient: float, vol: float = 0.01) -> np.ndarray:
    noise = rng.standard_normal(bars) * vol
    returns = np.empty(bars)
    returns[0] = noise[0]
    for t in range(1, bars):
        returns[t] = coefficient * returns[t - 1] + noise[t]
    return returns


def momentum_p_value(returns: np.ndarray) -> float:
    """Skill p-value of 'hold the sign of the last return', a known-good rule when returns are AR(1) > 0."""
    held = np.sign(returns[:-1])
    return circular_shift_test(held, returns[1:], COST, min_shift=20, max_shifts=300)["p_value"]


def test_skill_test_is_calibrated_on_random_walks():
    p_values = np.array([momentum_p_value(ar1_returns(np.random.default_rng(seed), 301, 0.0)) for seed in range(200)])
    assert (p_values < 0.05).mean() <= 0.10
    assert 0.35 <= np.median(p_values) <= 0.65  # roughly uniform, not piled up at either end


def test_skill_test_finds_a_planted_edge():
    p_values = np.array([momentum_p_value(ar1_returns(np.random.default_rng(seed), 301, 0.25)) for seed in range(50)])
    assert (p_values < 0.05).mean() >= 0.85


def test_constant_positions_have_no_timing_skill():
    returns = ar1_returns(np.random.default_rng(1), 200, 0.0) + 0.002  # a strong drift: holding pays
    assert circular_shift_test(np.ones(199), returns[1:], COST, min_shift=20, max_shifts=100)["p_value"] == 1.0
    assert circular_shift_test(np.zeros(199), returns[1:], COST, min_shift=20, max_shifts=100)["p_value"] == 1.0


def test_resampling_works_a_block_of_rows_at_a_time_with_the_same_numbers():
    """Thousands of shifts over thousands of bars stay in a few MB, and give what the whole matrix gives."""
    import tracemalloc

    rng = np.random.default_rng(5)
    returns = ar1_returns(rng, 3001, 0.1)
    held = np.sign(returns[:-1])
    bars = len(held)
    starts = rng.integers(0, bars, size=(5000, -(-bars // 10)))
    tracemalloc.start()
    try:
        many = circular_shift_test(held, returns[1:], COST, min_shift=20, max_shifts=2900)
        resampled, flipped = bootstrap_sharpes([held, -held], starts, 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert many["shifts"] == 2900
    assert peak < 32e6, f"peak {peak / 1e6:.0f} MB: a (rows x bars) matrix is built whole (~{5000 * bars * 8 / 1e6:.0f} MB)"

    offsets = np.arange(20, bars - 20 + 1)
    offsets = offsets[np.linspace(0, offsets.size - 1, 2900).round().astype(int)]
    whole = _sharpe_rows(net_returns(held[(np.arange(bars)[None, :] - offsets[:, None]) % bars], returns[1:], COST))
    observed = _sharpe_rows(net_returns(held, returns[1:], COST))
    assert many["p_value"] == (1 + np.count_nonzero(whole >= observed - 1e-12)) / 2901
    assert many["null_sharpe_median"] == float(np.median(whole))
    whole_indices = ((starts[:, :, None] + np.arange(10)) % bars).reshape(len(starts), -1)[:, :bars]
    assert np.array_equal(resampled, _sharpe_rows(held[whole_indices]))
    assert np.array_equal(flipped, _sharpe_rows(-held[whole_indices]))


def test_deflated_sharpe_falls_with_the_number_and_spread_of_trials():
    returns = ar1_returns(np.random.default_rng(3), 500, 0.0) + 0.001
    alone = deflated_sharpe(returns, [0.1])["value"]
    many = deflated_sharpe(returns, list(np.linspace(-0.1, 0.1, 50)))["value"]
    assert 0.9 < alone <= 1.0 and many < alone


def test_fold_bounds_are_chronological_without_leakage():
    folds = fold_bounds(1000, valid_ratio=0.1, test_ratio=0.1, folds=4, lookback=10)
    assert [f.test for f in folds] == [(600, 700), (700, 800), (800, 900), (900, 1000)]
    for fold in folds:
        assert fold.train == (0, fold.valid[0]) and fold.valid[1] == fold.test[0]
    for k, fold in enumerate(folds):  # no validation window that chose fold k's epoch reaches into its test window
        assert all(earlier.valid[1] <= fold.test[0] for earlier in folds[: k + 1])
    with pytest.raises(DataError, match="trademaster.evaluation.folds"):
        fold_bounds(100, valid_ratio=0.2, test_ratio=0.2, folds=4, lookback=10)


def test_walk_forward_observes_only_the_past_of_each_test_window(tmp_path):
    config = default_config(data={"source": "demo", "demo_series": "synthetic", "synthetic_rows": 240},
                            trademaster={"epochs": 1, "parallel_envs": 4})
    dataset = load_dataset(config.data, "WF")
    wf = run_walk_forward(dataset, config, None)
    dates = dataset.frame["date"]
    for run in wf.runs:
        train, valid, test = (run.dataset.splits[name] for name in ("train", "valid", "test"))
        assert train.own["date"][-1] < valid.own["date"][0] and valid.own["date"][-1] < test.own["date"][0]
        assert test.bars["date"][0] == dates[np.searchsorted(dates, test.own["date"][0]) - 9]  # warm-up only
    tests = [run.dataset.splits["test"].own["date"] for run in wf.runs]
    assert all(a[-1] < b[0] for a, b in zip(tests, tests[1:])) and tests[-1][-1] == dates[-1]


def test_baselines_on_a_hand_computed_case():
    close = np.array([10.0, 11.0, 12.0, 11.0, 10.0, 11.0, 12.0])
    settings = TrademasterConfig.from_values({"evaluation": {"ma_fast": 1, "ma_slow": 2, "ma_allow_short": False}}).evaluation
    assert isinstance(settings, EvaluationConfig)
    # fast = close, slow = mean of the last two closes: above while the close rises
    assert ma_crossover_positions(close, 1, 2, False).tolist() == [0, 1, 1, 0, 0, 1, 1]
    assert ma_crossover_positions(close, 1, 2, True).tolist() == [0, 1, 1, -1, -1, 1, 1]
    window = slice(2, 5)
    assert baseline_positions("ma_crossover", close, window, settings).tolist() == [1, 0, 0]
    assert baseline_positions("buy_and_hold", close, window, settings).tolist() == [1, 1, 1]
    hold = Track(close[window], np.ones(3))
    # 12 -> 11 -> 10 fully invested after paying 15 bp to enter
    assert hold.net_returns(COST) == pytest.approx([(1 - COST) * 11 / 12 - 1, 10 / 11 - 1])
    flat = Track(close[window], np.zeros(3))
    assert flat.net_returns(COST).tolist() == [0.0, 0.0]


def test_report_on_a_hand_computed_case():
    close = np.array([100.0, 110.0, 99.0, 99.0, 108.9])
    strategy = Track(close, np.array([1.0, 0.0, 1.0, 1.0, 0.0]))  # in, out, in again
    hold = Track(close, np.ones(5))
    report = track_report([strategy, strategy], [hold, hold], cost_rate=0.01, bars_per_year=4.0)
    pooled, fold = report["pooled"], report["folds"][0]
    net = [0.99 * 1.1 - 1, -0.01, 0.99 * 1.0 - 1, 0.1]  # 1% on each change: in (bar 0), out (1), in (2)
    assert fold["total_return"] == pytest.approx(np.prod(1 + np.array(net)) - 1)
    assert fold["total_return_gross"] == pytest.approx(1.1 * 1.0 * 1.1 - 1)
    assert fold["trades"] == 3 and pooled["trades"] == 6
    assert fold["exposure"] == pytest.approx(0.75) and fold["turnover"] == pytest.approx(0.75)
    assert fold["win_rate"] == pytest.approx(2 / 3)  # in-market bars: +8.9 %, -1 %, +10 %
    assert fold["profit_factor"] == pytest.approx((net[0] + net[3]) / -net[2])
    bh = np.prod([0.99 * 1.1, 0.9, 1.0, 1.1]) - 1
    assert fold["excess_return"] == pytest.approx(fold["total_return"] - bh)
    assert fold["max_drawdown"] == pytest.approx(1 - (1 + net[0]) * 0.99 * 0.99 / (1 + net[0]))
    assert fold["max_drawdown_bars"] == 2 and drawdown_bars(np.array([0.1, -0.1, 0.05, 0.2])) == 2
    assert fold["cost_drag"] == pytest.approx(fold["annual_return_gross"] - fold["annual_return"])
    assert pooled["bars"] == 8 and pooled["total_return"] == pytest.approx((1 + fold["total_return"]) ** 2 - 1)


@pytest.mark.parametrize(("series", "low", "high"), [("planted", 0.18, 0.32), ("random_walk", -0.07, 0.07)])
def test_known_answer_demo_series(series, low, high):
    config = default_config(data={"source": "demo", "demo_series": series, "synthetic_rows": 3000, "synthetic_seed": 4})
    close = load_dataset(config.data, "KA").frame["close"]
    returns = close[1:] / close[:-1] - 1
    assert low < np.corrcoef(returns[:-1], returns[1:])[0, 1] < high
    assert 0.009 < returns.std() < 0.011
