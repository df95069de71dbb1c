"""The `upstream` engine backend: real TradeMaster DeepScalper in its own interpreter.

TradeMaster's pins (pydantic 1, numpy<2, mmcv 1.7) cannot live beside Airflow 3, so its
trainer runs as a subprocess of a user-provided checkout (vendor/README.md). We write its
config and split CSVs into out_dir, run its own entry point for training and for the
backtests, and read back its outputs. Metrics are ours: upstream annualises with 252 bars and
books a short as cash spent, so its equity can go negative; we re-mark its trades (short =
liability, cost on traded notional) and report its own figures beside ours.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from tmpipe.config.sections import EngineConfig
from tmpipe.engine.bars import Bars
from tmpipe.engine.defaults import RESULT_SCHEMA_VERSION
from tmpipe.engine import upstream_config as boundary
from tmpipe.errors import UpstreamError
from tmpipe.symbols import validate_symbol

ACTIONS = ("short", "flat", "long")  # upstream action index 0/1/2 = sell/hold/buy one unit
_EPISODE = re.compile(r"^(Train|Valid) Episode: \[(\d+)/(\d+)\]")
_TABLE_VALUE = re.compile(r"^\|\s*([^|%]+)%\s*\|")
_Q_LINE = "TMPIPE_Q "
# Runs inside upstream's interpreter (cwd = checkout): Q-values of one state from the bundle.
_INFER_PROGRAM = """
import json, sys
import torch
from mmcv import Config
from trademaster.nets.builder import build_net
request = json.load(sys.stdin)
net = build_net(Config.fromfile(request["config"]).act)
net.load_state_dict(torch.load(request["weights"], map_location="cpu", weights_only=False)["act"])
net.eval()
with torch.no_grad():
    q = net(torch.tensor([request["state"]], dtype=torch.float32))[0].tolist()
print("TMPIPE_Q " + json.dumps(q))
"""


@dataclass(frozen=True)
class ChildRun:
    """One finished upstream process: wall time, peak resident memory and its last lines."""

    seconds: float
    peak_rss_mb: float
    tail: list[str]


def child_env(out_dir: Path) -> dict[str, str]:
    """A minimal environment: nothing of ours (PYTHONPATH, secrets) reaches upstream.

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD: torch>=2.6 refuses upstream's own checkpoints (they
    pickle a numpy scalar epoch); the files are the ones this run just wrote.
    """
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    return {**keep, "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(out_dir / ".matplotlib"), "RAY_USAGE_STATS_ENABLED": "0",
            "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


def run_child(argv: list[str], *, home: Path, out_dir: Path, on_line: Callable[[str], None] | None = None,
              stdin: str | None = None) -> ChildRun:
    """Run upstream, streaming its merged stdout/stderr line by line; UpstreamError on failure."""
    began = time.perf_counter()
    tail: collections.deque[str] = collections.deque(maxlen=40)
    try:
        proc = subprocess.Popen(argv, cwd=home, env=child_env(out_dir), text=True, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        raise UpstreamError(f"cannot start {argv[0]}: {exc}") from exc
    assert proc.stdin is not None and proc.stdout is not None  # both piped above
    if stdin is not None:
        proc.stdin.write(stdin)
    proc.stdin.close()
    for raw in proc.stdout:
        line = raw.rstrip("\n")
        tail.append(line)
        if on_line is not None:
            on_line(line)
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)  # wait4 gives this child's own peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    run = ChildRun(time.perf_counter() - began, usage.ru_maxrss / 1024.0, list(tail))
    if proc.returncode != 0:
        raise UpstreamError(f"upstream TradeMaster exited with {proc.returncode} ({' '.join(argv[1:4])}); "
                            "last output:\n" + "\n".join(run.tail[-20:]))
    return run


class EpochLog:
    """Turns the trainer's stdout into epoch records (train/valid returns are upstream's own)."""

    def __init__(self, explore_rate: float, progress: Callable[[dict], None] | None):
        self.records: list[dict] = []
        self._explore_rate, self._progress = explore_rate, progress
        self._phase: str | None = None
        self._epoch, self._began = 0, time.perf_counter()
        self._train_return: float | None = None
        self._await_value = False

    def __call__(self, line: str) -> None:
        if self._progress is not None:
            self._progress({"event": "upstream_output", "line": line})
        episode = _EPISODE.match(line)
        if episode:
            self._phase, epoch = episode.group(1), int(episode.group(2))
            if self._phase == "Train" and epoch != self._epoch:
                self._epoch, self._began, self._train_return = epoch, time.perf_counter(), None
            return
        if "Total Return" in line:
            self._await_value = True
            return
        value = _TABLE_VALUE.match(line.strip()) if self._await_value else None
        if value is None:
            return
        self._await_value = False
        fraction = float(value.group(1)) / 100.0
        if self._phase == "Train":
            self._train_return = fraction
        elif self._phase == "Valid":
            record = {"epoch": self._epoch, "loss": None, "train_return": self._train_return,
                      "valid_return": fraction, "valid_sharpe": None, "epsilon": self._explore_rate,
                      "seconds": time.perf_counter() - self._began}
            self.records.append(record)
            self._phase = None
            if self._progress is not None:
                self._progress(dict(record))


def remark_trades(result: pd.DataFrame, bars: Bars, lookback: int, cost: float, initial_cash: float) -> dict:
    """Our equity of upstream's trades, rebuilt from its test_result.csv.

    Upstream row k (k >= 1) books ``units * (close_k - close_{k-1})`` as daily_return, so the
    units held over each bar follow exactly (they are whole numbers); a bar with no price
    change keeps the previous units. Equity pays cost * |traded units| * close at each trade.
    """
    n = len(result)
    rows = bars.rows(slice(lookback - 1, lookback - 1 + n))
    if n < 2 or len(rows) != n:
        raise UpstreamError(f"upstream backtest has {n} rows; expected 2..{len(bars) - lookback + 1}")
    close = np.asarray(rows["close"], dtype=np.float64)
    pnl = result["daily_return"].to_numpy(np.float64)[1:]
    moves = np.diff(close)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(moves != 0, pnl / moves, np.nan)
    known = ~np.isnan(raw)
    if known.any() and np.abs(raw[known] - np.round(raw[known])).max() > 1e-6 * max(1.0, np.abs(raw[known]).max()):
        raise UpstreamError("upstream's test_result.csv does not match whole-unit positions; output format changed?")
    held = pd.Series(np.round(raw)).ffill().fillna(0.0).to_numpy()
    units = np.append(held, held[-1])  # the last bar takes no action: its units stay held
    fees = cost * np.abs(np.diff(np.concatenate([[0.0], units]))) * close
    equity = initial_cash + np.concatenate([[0.0], np.cumsum(units[:-1] * moves - fees[:-1])])
    with np.errstate(divide="ignore", invalid="ignore"):
        position = np.where(equity > 0, units * close / equity, np.nan)
    upstream_equity = result["total assets"].to_numpy(np.float64)
    return {
        "dates": rows["date"], "close": close, "units": units, "position": position,
        "equity": equity, "upstream_equity": upstream_equity,
        "report": {
            "upstream_total_return": float(upstream_equity[-1] / upstream_equity[0] - 1.0),
            "upstream_min_equity": float(upstream_equity.min()),
            "upstream_nonpositive_equity_bars": int((upstream_equity <= 0).sum()),
            "nonpositive_equity_bars": int((equity <= 0).sum()),
            "unchanged_price_bars": int((~known).sum()),
            "max_units": float(np.abs(units).max()),
        },
    }


def exposure_or_none(position: float) -> float | None:
    """The last bar's exposure; None once re-marked equity is 0 or below (undefined, and JSON has no NaN)."""
    return float(position) if np.isfinite(position) else None


def _metrics(curve: dict, bars_per_year: float) -> dict:
    from tmpipe.engine.metrics import compute_metrics, returns_from_equity

    return compute_metrics(returns_from_equity(curve["equity"]), np.nan_to_num(curve["position"][:-1]), bars_per_year)


def _backtest(python: Path, home: Path, out_dir: Path, upstream_cfg: dict, name: str, on_line) -> tuple[pd.DataFrame, ChildRun]:
    """Upstream's own 'test' task (best checkpoint) over the split at environment.dataset.test_path."""
    cfg_path = out_dir / f"upstream_config_{name}.json"
    cfg_path.write_text(json.dumps(upstream_cfg, indent=2))
    run = run_child([str(python), "-u", boundary.ENTRY_POINT, "--config", str(cfg_path), "--task_name", "test",
                     "--verbose", "0"], home=home, out_dir=out_dir, on_line=on_line)
    produced = Path(upstream_cfg["work_dir"]) / "test_result.csv"
    if not produced.is_file():
        raise UpstreamError(f"upstream test task wrote no {produced}")
    kept = produced.with_name(f"{name}_result.csv")
    produced.replace(kept)
    return pd.read_csv(kept), run


def train_backtest_upstream(config: EngineConfig, *, symbol: str, out_dir: Path, progress: Callable[[dict], None] | None = None) -> dict:
    """Train DeepScalper with upstream TradeMaster and backtest it; the engine result contract."""
    from tmpipe.engine.backtest import EQUITY_CURVE_FILE, write_equity_curve
    from tmpipe.engine.data import fingerprint, iso, load_dataset
    from tmpipe.engine.environment import equity_curve
    from tmpipe.engine.metrics import compute_metrics, returns_from_equity

    validate_symbol(symbol)
    began = time.perf_counter()
    hyper, lookback = config.trademaster, config.data.lookback
    home, python = boundary.runtime_paths(hyper)
    commit = boundary.verify_checkout(home)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(config.data, symbol)
    threads = int(hyper.torch_threads or len(os.sched_getaffinity(0)))
    split_paths = boundary.write_split_csvs(dataset.splits, out_dir / "upstream_data")
    work_dir = out_dir / "upstream_work"
    upstream_cfg = boundary.build_upstream_config(config, symbol=symbol, split_paths=split_paths,
                                                  work_dir=work_dir, threads=threads)
    cfg_path = out_dir / "upstream_config.json"
    cfg_path.write_text(json.dumps(upstream_cfg, indent=2))

    log = EpochLog(upstream_cfg["act"]["explore_rate"], progress)
    train_run = run_child([str(python), "-u", boundary.ENTRY_POINT, "--config", str(cfg_path), "--task_name", "train",
                           "--verbose", "0"], home=home, out_dir=out_dir, on_line=log)
    epochs = log.records
    if len(epochs) != hyper.epochs:
        raise UpstreamError(f"parsed {len(epochs)} epochs from upstream's output, expected {hyper.epochs}; "
                            "last output:\n" + "\n".join(train_run.tail[-20:]))
    best = work_dir / "checkpoints" / "best.pth"
    if not best.is_file():
        raise UpstreamError(f"upstream training wrote no {best}")
    chosen = int(np.argmax([e["valid_return"] for e in epochs])) + 1  # upstream's own rule, first maximum

    echo = (lambda line: progress({"event": "upstream_output", "line": line})) if progress else None
    cost, cash = boundary.cost_rate(hyper), float(hyper.initial_cash)
    curves, runs = {}, {"train": train_run}
    for name in ("valid", "test"):
        frame, runs[name] = _backtest(python, home, out_dir, boundary.with_test_path(upstream_cfg, split_paths[name]),
                                      name, echo)
        curves[name] = remark_trades(frame, dataset.splits[name].bars, lookback, cost, cash)
    test = curves["test"]
    bh_equity, bh_positions = equity_curve(test["close"], np.ones_like(test["close"]), cost, cash)
    metrics = {
        "valid": _metrics(curves["valid"], dataset.bars_per_year),
        "test": _metrics(test, dataset.bars_per_year),
        "buy_and_hold": compute_metrics(returns_from_equity(bh_equity), bh_positions[:-1], dataset.bars_per_year),
    }
    curve_path = out_dir / EQUITY_CURVE_FILE
    write_equity_curve(curve_path, test["dates"], {
        "close": test["close"], "position": test["position"], "equity": test["equity"], "buy_and_hold": bh_equity,
        "units": test["units"], "upstream_equity": test["upstream_equity"]})

    data_fingerprint = fingerprint(dataset.frame)
    model_dir = out_dir / "model"
    model_dir.mkdir(exist_ok=True)
    shutil.copy2(best, model_dir / "best.pth")
    (model_dir / "upstream_config.json").write_text(json.dumps(upstream_cfg, indent=2))
    (model_dir / "metadata.json").write_text(json.dumps({
        "backend": "upstream", "commit": commit, "agent": hyper.agent, "symbol": symbol, "lookback": lookback,
        "tech_indicators": list(boundary.TECH_INDICATORS), "normalisation": None, "max_volume": boundary.MAX_VOLUME,
        "initial_cash": cash, "cost_rate": cost, "bars_per_year": dataset.bars_per_year,
        "chosen_epoch": chosen, "seed": hyper.seed, "data_fingerprint": data_fingerprint,
    }, indent=2))

    final_units = float(test["units"][-1])
    train_steps = len(dataset.splits["train"].bars) - lookback - boundary.forward_num_day(hyper)
    return {
        "schema_version": RESULT_SCHEMA_VERSION, "kind": "train_backtest", "backend": "upstream", "symbol": symbol,
        "agent": hyper.agent, "epochs": epochs, "chosen_epoch": chosen,
        "chosen_reason": (f"upstream TradeMaster's rule: highest validation total return by its own accounting "
                          f"({epochs[chosen - 1]['valid_return']:.4f}) at epoch {chosen} of {len(epochs)}"),
        "metrics": metrics,
        "excess_return": metrics["test"]["total_return"] - metrics["buy_and_hold"]["total_return"],
        "equity_curve_path": str(curve_path),
        "model_dir": str(model_dir),
        "last_action": {"action": ACTIONS[int(np.sign(final_units)) + 1], "target_position": exposure_or_none(test["position"][-1]),
                        "date": iso(test["dates"][-1])},
        "config": config.model_dump(mode="json"),
        "data_fingerprint": data_fingerprint,
        "splits": {name: {"first_timestamp": iso(s.own["date"][0]), "last_timestamp": iso(s.own["date"][-1]),
                          "rows": int(len(s.own))} for name, s in dataset.splits.items()},
        "wall_time_seconds": time.perf_counter() - began, "seed": hyper.seed, "torch_threads": threads,
        "upstream": {
            "commit": commit, "config_path": str(cfg_path), "work_dir": str(work_dir),
            "unmapped": dict(boundary.UNMAPPED_KEYS),
            "valid": curves["valid"]["report"], "test": test["report"],
            "train_env_steps_per_epoch": train_steps,
            "processes": {name: {"seconds": r.seconds, "peak_rss_mb": r.peak_rss_mb} for name, r in runs.items()},
        },
    }


def infer_upstream(model_dir: Path, config: EngineConfig, *, symbol: str) -> dict:
    """Upstream's Q-values at the test split's last bar for a flat book; the inference contract.

    From a flat book upstream's actions sell/hold/buy one unit are exactly short/flat/long.
    """
    from tmpipe.engine.data import iso, load_dataset
    from tmpipe.engine.market import market_summary

    validate_symbol(symbol)
    model_dir = Path(model_dir).resolve()
    meta_path = model_dir / "metadata.json"
    if not meta_path.is_file():
        raise UpstreamError(f"{model_dir} is not an upstream model bundle (no metadata.json)")
    meta = json.loads(meta_path.read_text())
    home, python = boundary.runtime_paths(config.trademaster)
    boundary.verify_checkout(home, meta["commit"])
    lookback = int(meta["lookback"])
    split = load_dataset(config.data.model_copy(update={"lookback": lookback}), symbol).splits["test"]
    window = split.bars.rows(slice(-lookback, None))
    state = window.matrix(list(meta["tech_indicators"])).T.reshape(-1).tolist() + [meta["initial_cash"], 0.0]
    request = json.dumps({"config": str(model_dir / "upstream_config.json"), "weights": str(model_dir / "best.pth"),
                          "state": state})
    lines: list[str] = []
    run_child([str(python), "-c", _INFER_PROGRAM], home=home, out_dir=model_dir.parent, on_line=lines.append, stdin=request)
    answer = [line for line in lines if line.startswith(_Q_LINE)]
    if not answer:
        raise UpstreamError("upstream inference printed no Q-values; last output:\n" + "\n".join(lines[-20:]))
    q = np.asarray(json.loads(answer[-1][len(_Q_LINE):]), dtype=np.float64)
    probabilities = np.exp(q - q.max())
    probabilities /= probabilities.sum()
    best = int(q.argmax())
    close = split.bars["close"]
    return {
        "schema_version": RESULT_SCHEMA_VERSION, "kind": "inference", "backend": "upstream", "symbol": symbol,
        "as_of": iso(split.bars["date"][-1]), "action": ACTIONS[best],
        "target_position": float((best - 1) * boundary.MAX_VOLUME * close[-1] / meta["initial_cash"]),
        "q_values": dict(zip(ACTIONS, q.tolist(), strict=True)), "probabilities": dict(zip(ACTIONS, probabilities.tolist(), strict=True)),
        "reference_price": float(close[-1]),
        "window": {"first_timestamp": iso(split.bars["date"][0]), "last_timestamp": iso(split.bars["date"][-1]),
                   "bars": int(len(split.bars))},
        "market": market_summary(close, float(meta["bars_per_year"])),
        "model_dir": str(model_dir),
    }
