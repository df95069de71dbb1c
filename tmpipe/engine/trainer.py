"""Training loop: parallel environments, epsilon-greedy exploration, validation-based selection."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from tmpipe.engine.backtest import rollout, rollout_metrics
from tmpipe.engine.data import Dataset
from tmpipe.engine.environment import ActionSpace, cost_rate, step_rewards
from tmpipe.engine.features import future_volatility, normalisation_stats, observation_windows
from tmpipe.engine.metrics import sharpe_or_zero

if TYPE_CHECKING:
    from tmpipe.config.sections import EngineConfig, TrademasterConfig
    from tmpipe.engine.network import QNetwork


@dataclass
class TrainOutcome:
    network: QNetwork  # the selected one
    epochs: list[dict]
    chosen_epoch: int
    chosen_reason: str
    stats: dict
    space: ActionSpace
    torch_threads: int


def blas_threads(trademaster: TrademasterConfig) -> int:
    """``torch_threads``, or every CPU this process may run on: the BLAS threads of evaluation."""
    return int(trademaster.torch_threads or len(os.sched_getaffinity(0)))


def evaluate(network, windows, space: ActionSpace, split, lookback: int, trademaster: TrademasterConfig, bars_per_year: float):
    """Greedy rollout of ``network`` over one split, and its metrics."""
    from threadpoolctl import threadpool_limits

    from tmpipe.engine.network import q_table

    with threadpool_limits(limits=blas_threads(trademaster), user_api="blas"):
        q = q_table(network, windows, space.position_feature(np.arange(len(space.names))))
    result = rollout(q, split, lookback, space, cost_rate(trademaster), float(trademaster.initial_cash))
    return result, rollout_metrics(result, bars_per_year)


def _return_std(bar_returns: np.ndarray) -> float:
    std = float(np.std(bar_returns))
    return std if std > 1e-12 else 1.0  # constant prices: keep rewards finite


def switch_penalty_per_unit(trademaster: TrademasterConfig, bar_returns: np.ndarray) -> float:
    """Training-only reward penalty per unit of position change, in log-growth units.

    Reward shaping against churn: a greedy Q-policy flips whenever noise in its Q-estimates
    beats the real cost of a trade (10-15 bp against daily moves of 1-4 %), and paid for it on
    every held-out split. Scaled by the training bars' return std so one setting fits any asset
    and bar size; the backtests charge only the real costs. Why 1.0: benchmarks/README.md.
    """
    return float(trademaster.switch_penalty) * _return_std(bar_returns)


def hindsight_moves(close: np.ndarray, horizon: int) -> np.ndarray:
    """Price move from each transition's bar to ``horizon`` bars later (the split's last bar at most)."""
    ahead = np.minimum(np.arange(len(close) - 1) + horizon, len(close) - 1)
    return close[ahead] / close[:-1] - 1.0


def reward_multiplier(trademaster: TrademasterConfig, bar_returns: np.ndarray) -> float:
    """Factor from log-growth rewards to Q-learning units: a one-std bar is worth ``reward_scale``.

    The Huber TD loss is quadratic within 1 unit, so a fixed factor put a 4 %-a-day asset in its
    linear zone and a 0.3 %-a-day one deep in its quadratic zone; per-asset scaling treats both
    alike. Why 5: benchmarks/README.md.
    """
    return float(trademaster.reward_scale) / _return_std(bar_returns)


def train(dataset: Dataset, config: EngineConfig, progress: Callable[[dict], None] | None = None,
          on_epoch: Callable[[dict, object], None] | None = None) -> TrainOutcome:
    """Train for up to ``epochs`` epochs and keep the network with the best validation Sharpe.

    ``on_epoch(record, network)`` sees every epoch's network (walk-forward selection uses it).
    """
    from threadpoolctl import threadpool_limits

    from tmpipe.engine.agent import DQNAgent, ReplayBuffer

    hyper, lookback = config.trademaster, config.data.lookback
    threads = blas_threads(hyper)
    space = ActionSpace.from_config(hyper)
    train_bars = dataset.splits["train"].bars
    stats = normalisation_stats(train_bars)
    windows = {name: observation_windows(split.bars, stats, lookback) for name, split in dataset.splits.items()}
    close = train_bars["close"][lookback - 1 :]
    next_returns = close[1:] / close[:-1] - 1.0  # one per transition window 0..N-1
    vol, vol_valid = future_volatility(close, hyper.volatility_horizon)
    vol_scale = vol[vol_valid].mean() if vol_valid.any() and vol[vol_valid].mean() > 0 else 1.0
    switch_cost = switch_penalty_per_unit(hyper, next_returns)
    hindsight = float(hyper.hindsight_weight) * hindsight_moves(close, hyper.hindsight_horizon)

    rng = np.random.default_rng(hyper.seed)
    # One BLAS thread: the learner's matrices are tiny, and OpenBLAS threads on a busy machine
    # made an epoch ~8x slower (benchmarks/README.md).
    with threadpool_limits(limits=1, user_api="blas"):
        agent = DQNAgent(windows["train"], space.position_feature(np.arange(len(space.names))), hyper,
                         vol / vol_scale, vol_valid, reward_multiplier(hyper, next_returns))
        buffer = ReplayBuffer(hyper.replay_size)
        chunks = [c for c in np.array_split(np.arange(len(next_returns)), hyper.parallel_envs) if len(c)]
        starts = np.array([c[0] for c in chunks])
        lengths = np.array([len(c) for c in chunks])
        steps_per_epoch = int(lengths.max())
        total_steps = max(1, hyper.epochs * steps_per_epoch - 1)
        cost = cost_rate(hyper)
        records, best_score, best_state, best_epoch = [], -np.inf, None, 0
        stop_reason = f"no early stop within {hyper.epochs} epoch(s)"
        for epoch in range(1, hyper.epochs + 1):
            began, losses, epsilon = time.perf_counter(), [], float(hyper.epsilon_start)
            held = np.full(len(chunks), space.flat)
            for step in range(steps_per_epoch):
                active = step < lengths
                window, position = starts[active] + step, held[active]
                progress_frac = min(1.0, ((epoch - 1) * steps_per_epoch + step) / total_steps)
                epsilon = hyper.epsilon_start + (hyper.epsilon_end - hyper.epsilon_start) * progress_frac
                action = agent.greedy(window, position)
                explore = rng.random(len(window)) < epsilon
                action = np.where(explore, rng.integers(0, len(space.names), len(window)), action)
                before, after = space.positions[position], space.positions[action]
                reward, ruined = step_rewards(before, after, next_returns[window], cost)
                shaped = reward - switch_cost * np.abs(after - before) + hindsight[window] * after
                buffer.add(window, position, action, shaped, ruined)
                held[active] = np.where(ruined, space.flat, action)
                if buffer.size >= hyper.batch_size:
                    losses.append(agent.learn(buffer, buffer.sample(rng, hyper.batch_size)))
            network = agent.sync()
            _, train_metrics = evaluate(network, windows["train"], space, dataset.splits["train"], lookback, hyper, dataset.bars_per_year)
            _, valid_metrics = evaluate(network, windows["valid"], space, dataset.splits["valid"], lookback, hyper, dataset.bars_per_year)
            record = {
                "epoch": epoch,
                "loss": float(np.mean(losses)) if losses else None,
                "train_return": train_metrics["total_return"],
                "valid_return": valid_metrics["total_return"],
                "valid_sharpe": valid_metrics["sharpe"],
                "epsilon": float(epsilon),
                "seconds": time.perf_counter() - began,
            }
            records.append(record)
            if on_epoch is not None:
                on_epoch(dict(record), network)
            if progress is not None:
                progress(dict(record))
            score = sharpe_or_zero(valid_metrics)
            if score > best_score:
                best_score, best_epoch, best_state = score, epoch, agent.online.state_dict()
            elif epoch - best_epoch >= hyper.early_stopping_patience:
                stop_reason = f"early stopping after epoch {epoch} ({hyper.early_stopping_patience} epochs without improvement)"
                break
        assert best_state is not None  # the first epoch beats -inf
        agent.online.load_state_dict(best_state)
    reason = (f"best validation Sharpe ({best_score:.4f}; a policy that never trades scores 0) "
              f"at epoch {best_epoch} of {len(records)}; {stop_reason}")
    return TrainOutcome(agent.online, records, best_epoch, reason, stats, space, threads)
