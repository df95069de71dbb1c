"""The builtin backend: walk-forward training, backtest and inference in NumPy (docs/contracts.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from tmpipe.config.sections import EngineConfig
from tmpipe.engine.backtest import EQUITY_CURVE_FILE, rollout, rollout_metrics
from tmpipe.engine.bundle import load_bundle, save_bundle
from tmpipe.engine.data import fingerprint, iso, load_dataset
from tmpipe.engine.defaults import RESULT_SCHEMA_VERSION
from tmpipe.engine.environment import ALL_ACTIONS, ActionSpace
from tmpipe.engine.features import observation_windows
from tmpipe.engine.market import market_summary
from tmpipe.engine.trainer import blas_threads, cost_rate
from tmpipe.engine.walkforward import run_walk_forward, walk_forward_summary, write_pooled_curve
from tmpipe.errors import EngineError

MODEL_DIR = "model"


def train_backtest(config: EngineConfig, *, symbol: str, out_dir: Path, progress: Callable[[dict], None] | None) -> dict:
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hyper, lookback = config.trademaster, config.data.lookback
    dataset = load_dataset(config.data, symbol)
    wf = run_walk_forward(dataset, config, progress)
    deployed, choice = wf.deployed, wf.choices[-1]
    epoch = deployed.epoch_or_last(choice["epoch"])
    outcome = deployed.outcome
    assert outcome is not None  # every fold run is trained
    space, network = outcome.space, outcome.network
    network.load_state_dict(deployed.states[epoch])
    test = wf.oos[-1]
    valid_metrics = rollout_metrics(deployed.valid[epoch], dataset.bars_per_year)
    curve_path = write_pooled_curve(out_dir / EQUITY_CURVE_FILE, wf, cost_rate(hyper), float(hyper.initial_cash))
    data_fingerprint = fingerprint(dataset.frame)
    model_dir = save_bundle(out_dir / MODEL_DIR, network, {
        "agent": hyper.agent, "symbol": symbol, "lookback": lookback,
        "input_size": int(network.input_size), "hidden_size": hyper.hidden_size,
        "actions": list(space.names), "max_position": space.max_position, "allow_short": hyper.allow_short,
        "transaction_cost_pct": float(hyper.transaction_cost_pct), "slippage_pct": float(hyper.slippage_pct),
        "initial_cash": float(hyper.initial_cash), "normalisation": deployed.stats,
        "bars_per_year": dataset.bars_per_year, "data_fingerprint": data_fingerprint,
        "chosen_epoch": epoch, "seed": hyper.seed,
        "data_config": config.data.model_dump(mode="json"),
    })
    last = int(test.actions[-1])
    summary = walk_forward_summary(dataset, wf)
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "kind": "train_backtest",
        "backend": "builtin",
        "symbol": symbol,
        "agent": hyper.agent,
        "epochs": deployed.records,
        "chosen_epoch": epoch,
        "chosen_reason": f"{choice['reason']} (fold {len(wf.runs)} of {len(wf.runs)}, the deployed model)",
        "metrics": {"valid": valid_metrics, "test": wf.pooled_metrics, "buy_and_hold": wf.pooled_buy_and_hold},
        "excess_return": wf.pooled_metrics["total_return"] - wf.pooled_buy_and_hold["total_return"],
        "equity_curve_path": str(curve_path.resolve()),
        "model_dir": str(model_dir.resolve()),
        "last_action": {"action": space.names[last], "target_position": float(test.positions[-1]),
                        "date": iso(test.dates[-1])},
        "config": config.model_dump(mode="json"),
        "data_fingerprint": data_fingerprint,
        "splits": {name: summary["folds"][-1][name] for name in ("train", "valid", "test")},
        "walk_forward": summary,
        "report": wf.report,
        "baselines": wf.baseline_reports,
        "skill": wf.skill,
        "wall_time_seconds": time.perf_counter() - began,
        "seed": hyper.seed,
        "torch_threads": outcome.torch_threads,
    }


def infer(model_dir: Path, config: EngineConfig, *, symbol: str) -> dict:
    from threadpoolctl import threadpool_limits

    from tmpipe.engine.network import q_table

    bundle = load_bundle(Path(model_dir))
    meta = bundle.metadata
    data_config = config.data.model_copy(update={"lookback": int(meta["lookback"])})  # the network fixes the window
    dataset = load_dataset(data_config, symbol)
    space = ActionSpace.from_bundle(meta)
    split = dataset.splits["test"]
    windows = observation_windows(split.bars, meta["normalisation"], meta["lookback"])
    with threadpool_limits(limits=blas_threads(config.trademaster), user_api="blas"):
        q = q_table(bundle.network, windows, space.position_feature(np.arange(len(space.names))))
    result = rollout(q, split, meta["lookback"], space, meta["transaction_cost_pct"] + meta["slippage_pct"], meta["initial_cash"])
    if len(result.q_values) == 0:
        raise EngineError(f"{symbol}: no bars to infer on")
    last = int(result.actions[-1])
    q_last = result.q_values[-1]
    probabilities = np.exp(q_last - q_last.max())
    probabilities /= probabilities.sum()
    by_name = dict(zip(space.names, range(len(space.names)), strict=True))
    bars_per_year = dataset.bars_per_year
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "kind": "inference",
        "backend": "builtin",
        "symbol": symbol,
        "as_of": iso(result.dates[-1]),
        "action": space.names[last],
        "target_position": float(result.positions[-1]),
        "q_values": {a: float(q_last[by_name[a]]) if a in by_name else None for a in ALL_ACTIONS},
        "probabilities": {a: float(probabilities[by_name[a]]) if a in by_name else 0.0 for a in ALL_ACTIONS},
        "reference_price": float(result.close[-1]),
        "window": {"first_timestamp": iso(split.bars["date"][0]),
                   "last_timestamp": iso(split.bars["date"][-1]), "bars": int(len(split.bars))},
        "market": market_summary(split.bars["close"], bars_per_year),
        "model_dir": str(Path(model_dir).resolve()),
    }
