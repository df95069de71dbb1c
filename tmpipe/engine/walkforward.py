"""Walk-forward training and evaluation of the builtin engine (docs/evaluation.md).

Fold k (of K) tests on ``test_ratio`` of the bars, validates on the ``valid_ratio`` bars just
before them and trains on every bar before those; the last fold's test window is the data's
last bars, each earlier fold steps back one test window. No test window overlaps data that
chose its model: the epoch of fold k is the one with the best Sharpe over the validation
windows of folds 1..k pooled (all before fold k's test window), among epochs whose exploration
rate ended at most ``max_selection_epsilon``. The deployed model is the last fold's network.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tmpipe.config.sections import EngineConfig

from tmpipe.engine.backtest import Rollout, write_equity_curve
from tmpipe.engine.environment import equity_curve
from tmpipe.engine.baselines import BASELINES, baseline_parameters, baseline_positions
from tmpipe.engine.data import Dataset, SplitBars, iso
from tmpipe.engine.environment import ActionSpace
from tmpipe.engine.features import normalisation_stats, observation_windows
from tmpipe.engine.metrics import compute_metrics
from tmpipe.engine.report import Track, track_report
from tmpipe.engine.skill import _sharpe_rows, assess_skill, net_returns
from tmpipe.engine.trainer import TrainOutcome, cost_rate, evaluate, train
from tmpipe.errors import DataError

SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class FoldBounds:
    """Row ranges [lo, hi) of one fold's splits in the full bar table."""

    train: tuple[int, int]
    valid: tuple[int, int]
    test: tuple[int, int]


def fold_bounds(rows: int, valid_ratio: float, test_ratio: float, folds: int, lookback: int) -> list[FoldBounds]:
    """Chronological expanding-window folds; the last fold is the plain ratio split."""
    n_test, n_valid = int(round(rows * test_ratio)), int(round(rows * valid_ratio))
    out = []
    for k in range(folds):
        test_hi = rows - (folds - 1 - k) * n_test
        test_lo = test_hi - n_test
        valid_lo = test_lo - n_valid
        out.append(FoldBounds((0, valid_lo), (valid_lo, test_lo), (test_lo, test_hi)))
    needed = 2 * (lookback + 1)
    if out[0].train[1] < needed or min(n_test, n_valid) < lookback + 1:
        raise DataError(f"trademaster.evaluation.folds: {folds} folds leave the first fold {out[0].train[1]} training "
                        f"bars and {min(n_test, n_valid)} bars per validation/test window out of {rows}; "
                        f"needs at least {needed} and {lookback + 1} (fewer folds, or smaller ratios)")
    return out


def fold_dataset(dataset: Dataset, bounds: FoldBounds, lookback: int) -> Dataset:
    """The fold's splits, each led by warm-up bars borrowed from before it (observed, never traded)."""
    splits = {}
    for name in SPLIT_NAMES:
        lo, hi = getattr(bounds, name)
        start = max(0, lo - (lookback - 1))
        splits[name] = SplitBars(dataset.frame.rows(slice(start, hi)), borrowed=lo - start)
    return Dataset(frame=dataset.frame, splits=splits, source=dataset.source, bars_per_year=dataset.bars_per_year)


def is_split_directory(dataset: Dataset) -> bool:
    return Path(dataset.source).is_dir()


@dataclass
class FoldRun:
    """One fold's training: per epoch its record, its validation and test rollouts."""

    dataset: Dataset
    stats: dict
    records: list[dict] = field(default_factory=list)
    valid: dict[int, Rollout] = field(default_factory=dict)
    test: dict[int, Rollout] = field(default_factory=dict)
    states: dict[int, dict] = field(default_factory=dict)
    outcome: TrainOutcome | None = None

    def epoch_or_last(self, epoch: int) -> int:
        """A fold that stopped early keeps its last network for later epoch numbers."""
        return min(epoch, self.records[-1]["epoch"])


def _train_fold(fold: Dataset, config: EngineConfig, keep_states: bool, progress) -> FoldRun:
    hyper, lookback = config.trademaster, config.data.lookback
    stats = normalisation_stats(fold.splits["train"].bars)
    windows = {name: observation_windows(fold.splits[name].bars, stats, lookback) for name in ("valid", "test")}
    run = FoldRun(fold, stats)

    def on_epoch(record: dict, network) -> None:
        space = ActionSpace.from_config(hyper)
        epoch = record["epoch"]
        run.records.append(record)
        for name, store in (("valid", run.valid), ("test", run.test)):
            store[epoch], _ = evaluate(network, windows[name], space, fold.splits[name], lookback, hyper, fold.bars_per_year)
        if keep_states:
            run.states[epoch] = copy.deepcopy(network.state_dict())

    run.outcome = train(fold, config, progress, on_epoch=on_epoch)
    return run


def _pooled_sharpe(rollouts: list[Rollout], cost: float) -> float:
    returns = np.concatenate([net_returns(r.positions[:-1], r.close[1:] / r.close[:-1] - 1.0, cost) for r in rollouts])
    return float(_sharpe_rows(returns))


def select_epochs(runs: list[FoldRun], cost: float, max_epsilon: float) -> list[dict]:
    """Per fold: the epoch with the best pooled validation Sharpe over folds 1..k, and why."""
    choices = []
    for k, run in enumerate(runs):
        eligible = [r["epoch"] for r in run.records if r["epsilon"] <= max_epsilon]
        scores = {e: _pooled_sharpe([runs[i].valid[runs[i].epoch_or_last(e)] for i in range(k + 1)], cost)
                  for e in eligible}
        if scores:
            best = max(scores, key=lambda e: (scores[e], e))  # ties: the later, more trained epoch
            reason = (f"best Sharpe ({scores[best] * 100:.2f} per 100 bars) on the validation windows of folds 1..{k + 1} "
                      f"pooled, among the {len(eligible)} epoch(s) whose exploration rate ended <= {max_epsilon}")
        else:
            best = run.records[-1]["epoch"]
            reason = (f"no epoch ended with exploration rate <= {max_epsilon} "
                      f"(last: {run.records[-1]['epsilon']:.3f}); the last epoch was taken")
        choices.append({"epoch": best, "reason": reason, "candidates": eligible})
    return choices


def _track(rollout: Rollout) -> Track:
    return Track(rollout.close, rollout.positions)


@dataclass
class WalkForward:
    """Everything the engine result needs from a walk-forward run."""

    runs: list[FoldRun]
    bounds: list[FoldBounds] | None  # None: the dataset came split in directories, one fold
    choices: list[dict]
    oos: list[Rollout]  # each fold's test rollout at its chosen epoch
    baselines: dict[str, list[Track]]
    report: dict
    baseline_reports: dict[str, dict]
    skill: dict
    pooled_metrics: dict
    pooled_buy_and_hold: dict

    @property
    def deployed(self) -> FoldRun:
        return self.runs[-1]


def run_walk_forward(dataset: Dataset, config: EngineConfig, progress: Callable[[dict], None] | None) -> WalkForward:
    hyper, lookback = config.trademaster, config.data.lookback
    settings = hyper.evaluation
    rows = len(dataset.frame)
    if is_split_directory(dataset):
        bounds = None
        fold_sets = [dataset]
    else:
        bounds = fold_bounds(rows, float(config.data.valid_ratio), float(config.data.test_ratio),
                             settings.folds, lookback)
        fold_sets = [fold_dataset(dataset, b, lookback) for b in bounds]
    runs = []
    for k, fold in enumerate(fold_sets):
        tell = None if progress is None else (lambda r, k=k: progress({**r, "fold": k + 1, "folds": len(fold_sets)}))
        runs.append(_train_fold(fold, config, keep_states=k == len(fold_sets) - 1, progress=tell))
    cost = cost_rate(hyper)
    choices = select_epochs(runs, cost, float(settings.max_selection_epsilon))
    oos = [run.test[run.epoch_or_last(choice["epoch"])] for run, choice in zip(runs, choices, strict=True)]
    tracks = [_track(r) for r in oos]
    close_all = dataset.frame["close"]
    baselines: dict[str, list[Track]] = {name: [] for name in BASELINES}
    for rollout in oos:
        first = _row_of(dataset, rollout.dates[0])
        window = slice(first, first + len(rollout.close))
        for name in BASELINES:
            baselines[name].append(Track(rollout.close, baseline_positions(name, close_all, window, settings)))
    bars_per_year = dataset.bars_per_year
    report = track_report(tracks, baselines["buy_and_hold"], cost, bars_per_year)
    baseline_reports = {name: {"parameters": baseline_parameters(name, settings),
                               **track_report(baselines[name], baselines["buy_and_hold"], cost, bars_per_year)}
                        for name in BASELINES}
    asset = np.concatenate([t.asset_returns for t in tracks])
    held = np.concatenate([t.held for t in tracks])
    trial_sharpes = [_pooled_sharpe([run.test[run.epoch_or_last(e)] for run in runs], cost)
                     for e in sorted({e for c in choices for e in c["candidates"]})] or [0.0]
    skill = assess_skill(held, asset, {name: np.concatenate([t.held for t in baselines[name]]) for name in BASELINES},
                         cost, bars_per_year, trial_sharpes, settings, seed=hyper.seed)
    skill["parameters"]["folds"] = len(runs)
    pooled = compute_metrics(np.concatenate([t.net_returns(cost) for t in tracks]), held, bars_per_year)
    bh_tracks = baselines["buy_and_hold"]
    pooled_bh = compute_metrics(np.concatenate([t.net_returns(cost) for t in bh_tracks]),
                                np.concatenate([t.held for t in bh_tracks]), bars_per_year)
    return WalkForward(runs, bounds, choices, oos, baselines, report, baseline_reports, skill, pooled, pooled_bh)


def _row_of(dataset: Dataset, date) -> int:
    return int(np.searchsorted(dataset.frame["date"], date))


def walk_forward_summary(dataset: Dataset, wf: WalkForward) -> dict:
    """The result's ``walk_forward`` block: folds with their spans, choices and the deployed model."""
    folds = []
    for k, (run, choice) in enumerate(zip(wf.runs, wf.choices, strict=True)):
        spans = {name: _span_of_split(run.dataset, name) for name in SPLIT_NAMES}
        folds.append({"fold": k + 1, **spans, "chosen_epoch": run.epoch_or_last(choice["epoch"]),
                      "chosen_reason": choice["reason"], "epochs_run": len(run.records)})
    last = folds[-1]
    return {
        "folds": folds,
        "selection": "per fold, the best pooled validation Sharpe of folds 1..k; never an epoch whose exploration "
                     "rate ended above trademaster.evaluation.max_selection_epsilon",
        "deployed": {
            "fold": len(folds),
            "epoch": last["chosen_epoch"],
            "trained_on": last["train"],
            "selected_on": [f["valid"] for f in folds],
            "inference_window": last["test"],
            "description": (f"the network of fold {len(folds)} at epoch {last['chosen_epoch']}, trained on bars "
                            f"{last['train']['first_timestamp']}..{last['train']['last_timestamp']}; inference replays it "
                            f"over the latest data.test_ratio of the bars ({last['test']['first_timestamp']} onwards)"),
        },
        "split_directory": is_split_directory(dataset),
    }


def _span_of_split(fold: Dataset, name: str) -> dict:
    own = fold.splits[name].own
    return {"first_timestamp": iso(own["date"][0]), "last_timestamp": iso(own["date"][-1]), "rows": int(len(own))}


def write_pooled_curve(path: Path, wf: WalkForward, cost: float, initial_cash: float) -> Path:
    """The out-of-sample curve of every fold's test window, one row per decision bar.

    Columns: date, close, position, equity, each baseline's equity (buy_and_hold first), fold. Equity carries
    over from fold to fold (each fold starts flat, so its first row repeats the previous end).
    """
    columns: dict[str, list] = {"close": [], "position": [], "equity": [], **{n: [] for n in BASELINES}, "fold": []}
    start = {name: initial_cash for name in ("equity", *BASELINES)}
    for k, rollout in enumerate(wf.oos):
        columns["fold"].append(np.full(len(rollout.close), k + 1.0))
        columns["close"].append(rollout.close)
        columns["position"].append(rollout.positions)
        curves = {"equity": Track(rollout.close, rollout.positions),
                  **{name: wf.baselines[name][k] for name in BASELINES}}
        for name, track in curves.items():
            equity, _ = equity_curve(track.close, track.positions, cost, start[name])
            columns[name].append(equity)
            start[name] = float(equity[-1])
    dates = np.concatenate([r.dates for r in wf.oos])
    return write_equity_curve(path, dates, {name: np.concatenate(parts) for name, parts in columns.items()})


__all__ = ["fold_bounds", "fold_dataset", "run_walk_forward", "walk_forward_summary", "select_epochs", "write_pooled_curve"]
