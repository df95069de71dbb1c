"""Is the out-of-sample timing better than luck? Three answers for ``result["skill"]``.

- ``p_value``: circular-shift test. The strategy's positions are shifted in time against the
  asset's returns (every offset at least ``min_shift`` bars from 0, up to ``max_shifts`` of
  them, evenly spaced). A shift keeps exposure, turnover and the runs of positions but
  destroys timing; the p-value is the share of shifts whose Sharpe after costs is at least the
  real one, (1 + ties-or-better) / (1 + shifts). A constant position has p = 1: no timing.
- Sharpe difference against each baseline, with a circular block bootstrap interval over
  the same bars (paired, so the shared market moves cancel).
- Deflated Sharpe ratio (Bailey and Lopez de Prado, 2014): the probability that the true
  Sharpe exceeds the best of ``trials`` skill-less candidates (the epochs and seeds that
  were tried), given the returns' length, skewness and kurtosis.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from tmpipe.engine.environment import growth_factors

if TYPE_CHECKING:
    from tmpipe.config.sections import EvaluationConfig

EULER_GAMMA = 0.5772156649015329
# Rows of a resampling matrix computed at a time: ~2 MB of float64 per temporary, so they stay in
# cache and are reused, instead of fresh (shifts x bars) arrays that page-fault on every test.
BLOCK_CELLS = 1 << 18


def _sharpe_rows(returns: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe of each row; 0 for a row without volatility (holding cash)."""
    std = returns.std(axis=-1, ddof=1)
    flat = returns.max(axis=-1) == returns.min(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flat, 0.0, returns.mean(axis=-1) / np.where(flat, 1.0, std))


def _row_blocks(rows: int, columns: int) -> Iterator[slice]:
    step = max(1, BLOCK_CELLS // max(1, columns))
    return (slice(start, start + step) for start in range(0, rows, step))


def bootstrap_sharpes(series: list[np.ndarray], starts: np.ndarray, block: int) -> list[np.ndarray]:
    """Per-bar Sharpe of each series over each circular block bootstrap resample, a block of rows at a time.

    Row ``i`` of ``starts`` holds the first bars of resample ``i``'s blocks of ``block`` bars; every
    series is resampled on the same bars (paired), and the indices are built once for all of them.
    """
    bars = len(series[0])
    sharpes = [np.empty(len(starts)) for _ in series]
    for rows in _row_blocks(len(starts), bars):
        chosen = starts[rows]
        indices = ((chosen[:, :, None] + np.arange(block)) % bars).reshape(len(chosen), -1)[:, :bars]
        for returns, out in zip(series, sharpes, strict=True):
            out[rows] = _sharpe_rows(returns[indices])
    return sharpes


def net_returns(held: np.ndarray, asset_returns: np.ndarray, cost_rate: float) -> np.ndarray:
    """Returns after costs of positions ``held`` (rows may be stacked) over ``asset_returns``; no ruin floor."""
    previous = np.concatenate([np.zeros(held.shape[:-1] + (1,)), held[..., :-1]], axis=-1)
    return growth_factors(previous, held, asset_returns, cost_rate) - 1.0


def circular_shift_test(held: np.ndarray, asset_returns: np.ndarray, cost_rate: float, *,
                        min_shift: int, max_shifts: int) -> dict:
    """p-value of the timing of ``held`` against ``asset_returns`` (one position per return)."""
    held = np.asarray(held, dtype=np.float64)
    asset_returns = np.asarray(asset_returns, dtype=np.float64)
    n = len(held)
    offsets = np.arange(min_shift, n - min_shift + 1)
    if offsets.size == 0:
        return {"p_value": 1.0, "observed_sharpe": float(_sharpe_rows(net_returns(held, asset_returns, cost_rate))),
                "shifts": 0, "note": f"too few bars ({n}) for shifts of at least {min_shift}"}
    if offsets.size > max_shifts:
        offsets = offsets[np.linspace(0, offsets.size - 1, max_shifts).round().astype(int)]
    observed = float(_sharpe_rows(net_returns(held, asset_returns, cost_rate)))
    null, bars = np.empty(offsets.size), np.arange(n)
    for rows in _row_blocks(offsets.size, n):
        shifted = held[(bars[None, :] - offsets[rows, None]) % n]
        null[rows] = _sharpe_rows(net_returns(shifted, asset_returns, cost_rate))
    at_least = int(np.count_nonzero(null >= observed - 1e-12))
    return {"p_value": (1 + at_least) / (1 + offsets.size), "observed_sharpe": observed,
            "shifts": int(offsets.size), "null_sharpe_median": float(np.median(null))}


def block_bootstrap_starts(n: int, block: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, blocks) first bars of the blocks of a circular block bootstrap over ``n`` bars."""
    return rng.integers(0, n, size=(samples, -(-n // block)))


def sharpe_difference(strategy: np.ndarray, baseline: np.ndarray, strategy_draws: np.ndarray,
                      baseline_draws: np.ndarray, bars_per_year: float, confidence: float) -> dict:
    """Annualised Sharpe of ``strategy`` minus that of ``baseline``, with a percentile interval from
    their per-bar Sharpes over the same bootstrap resamples (``bootstrap_sharpes``)."""
    scale = math.sqrt(bars_per_year)
    estimate = float(_sharpe_rows(strategy) - _sharpe_rows(baseline)) * scale
    draws = (strategy_draws - baseline_draws) * scale
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return {"estimate": estimate, "ci_low": float(low), "ci_high": float(high)}


def deflated_sharpe(returns: np.ndarray, trial_sharpes: list[float]) -> dict:
    """Deflated Sharpe ratio of per-bar ``returns`` given the per-bar Sharpes of all trials tried.

    With one trial the benchmark Sharpe is 0 and this is the probabilistic Sharpe ratio.
    """
    returns = np.asarray(returns, dtype=np.float64)
    n = returns.size
    sharpe = float(_sharpe_rows(returns))
    std = returns.std()
    centred = (returns - returns.mean()) / std if std > 0 else np.zeros_like(returns)
    skew, kurtosis = float(np.mean(centred**3)), float(np.mean(centred**4)) if std > 0 else 3.0
    trials = len(trial_sharpes)
    spread = float(np.std(trial_sharpes, ddof=1)) if trials > 1 else 0.0
    normal = NormalDist()
    benchmark = 0.0
    if trials > 1:
        benchmark = spread * ((1 - EULER_GAMMA) * normal.inv_cdf(1 - 1 / trials)
                              + EULER_GAMMA * normal.inv_cdf(1 - 1 / (trials * math.e)))
    denominator = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    value = normal.cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(denominator)) if n > 1 and denominator > 0 else 0.0
    return {"value": float(value), "trials": trials, "benchmark_sharpe_per_bar": benchmark,
            "sharpe_per_bar": sharpe, "skewness": skew, "kurtosis": kurtosis}


def assess_skill(held: np.ndarray, asset_returns: np.ndarray, baselines: dict[str, np.ndarray], cost_rate: float,
                 bars_per_year: float, trial_sharpes: list[float], settings: EvaluationConfig, seed: int) -> dict:
    """The ``skill`` block of a result for pooled out-of-sample positions and baseline positions."""
    strategy = net_returns(np.asarray(held, float), asset_returns, cost_rate)
    shift = circular_shift_test(held, asset_returns, cost_rate, min_shift=settings.min_shift,
                                max_shifts=settings.max_shifts)
    rng = np.random.default_rng(seed)
    block, samples, confidence = settings.bootstrap_block, settings.bootstrap_samples, float(settings.confidence)
    starts = block_bootstrap_starts(len(strategy), block, samples, rng)
    baseline_returns = {name: net_returns(np.asarray(pos, float), asset_returns, cost_rate) for name, pos in baselines.items()}
    strategy_draws, *baseline_draws = bootstrap_sharpes([strategy, *baseline_returns.values()], starts, block)
    differences = {name: sharpe_difference(strategy, returns, strategy_draws, draws, bars_per_year, confidence)
                   for (name, returns), draws in zip(baseline_returns.items(), baseline_draws, strict=True)}
    return {
        "p_value": float(shift["p_value"]),
        "method": "circular_shift",
        "parameters": {"statistic": "Sharpe after costs of the pooled out-of-sample bars",
                       "min_shift": settings.min_shift, "shifts": shift["shifts"],
                       "bars": int(len(strategy))},
        "observed_sharpe": float(shift["observed_sharpe"] * math.sqrt(bars_per_year)),
        "sharpe_difference": {
            "method": "circular_block_bootstrap", "block": block, "samples": samples, "confidence": confidence,
            "baselines": differences,
        },
        "deflated_sharpe": deflated_sharpe(strategy, trial_sharpes),
    }
