"""Benchmark the built-in engine on TradeMaster's BTC split (and upstream TradeMaster if configured).

Prints wall time per epoch, training environment steps per second, peak RSS and the test
metrics; with several seeds, the median test Sharpe. `--json` prints one JSON object.

    .venv/bin/python benchmarks/engine.py [DATA_DIR] --epochs 5 --seeds 5 [--json]

The upstream run needs TMPIPE_TRADEMASTER_HOME (a checkout at the commit pinned in vendor/)
and TMPIPE_TRADEMASTER_PYTHON (its interpreter); without them it is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tmpipe.engine.api import train_backtest
from tmpipe.engine.defaults import default_config

DEFAULT_DATA = "/work/shared/data/trademaster/algorithmic_trading/BTC"
HEADLINE = ("total_return", "annual_return", "sharpe", "sortino", "max_drawdown", "calmar", "win_rate", "turnover")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _config(args, seed: int, backend: str = "builtin") -> dict:
    config = default_config(
        data={"source": "csv", "path": args.data},
        trademaster={"epochs": args.epochs, "seed": seed, "backend": backend, "torch_threads": args.threads},
    )
    if backend == "upstream":
        config["trademaster"]["upstream"] = {
            "home": os.environ["TMPIPE_TRADEMASTER_HOME"], "python": os.environ["TMPIPE_TRADEMASTER_PYTHON"],
        }
    return config


def _summarise_run(result: dict, lookback: int) -> dict:
    epochs = result["epochs"]
    transitions = result["splits"]["train"]["rows"] - lookback  # train steps per epoch (one env pass)
    epoch_seconds = sum(e["seconds"] for e in epochs)
    return {
        "seed": result["seed"],
        "wall_time_seconds": result["wall_time_seconds"],
        "epochs_run": len(epochs),
        "chosen_epoch": result["chosen_epoch"],
        "seconds_per_epoch": statistics.median(e["seconds"] for e in epochs),
        "env_steps_per_second": len(epochs) * transitions / epoch_seconds if epoch_seconds > 0 else None,
        "test": {k: result["metrics"]["test"][k] for k in HEADLINE},
        "excess_return": result["excess_return"],
    }


def _run_backend(args, backend: str, peak_rss) -> dict:
    runs, hold = [], None
    with tempfile.TemporaryDirectory(prefix=f"tmpipe-bench-{backend}-") as scratch:
        for seed in range(args.seed, args.seed + args.seeds):
            config = _config(args, seed, backend)
            result = train_backtest(config, symbol=args.symbol, out_dir=Path(scratch) / f"seed{seed}",
                                    progress=None if args.json else _echo_epoch(backend, seed))
            runs.append(_summarise_run(result, config["data"]["lookback"]))
            hold = {k: result["metrics"]["buy_and_hold"][k] for k in HEADLINE}
            if not args.json:
                t = runs[-1]["test"]
                print(f"[{backend}] seed {seed}: test sharpe {t['sharpe']} return {t['total_return']:+.4f} "
                      f"({runs[-1]['wall_time_seconds']:.1f}s)")
    sharpes = [r["test"]["sharpe"] if r["test"]["sharpe"] is not None else 0.0 for r in runs]
    return {
        "runs": runs,
        "median_test_sharpe": statistics.median(sharpes),
        "median_test_total_return": statistics.median(r["test"]["total_return"] for r in runs),
        "median_seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in runs),
        "median_env_steps_per_second": statistics.median(r["env_steps_per_second"] or 0.0 for r in runs),
        "buy_and_hold": hold,
        "peak_rss_mb": peak_rss(),
    }


def _echo_epoch(backend: str, seed: int):
    def echo(record: dict) -> None:
        print(f"[{backend}] seed {seed} epoch {record['epoch']}: loss {record['loss']} "
              f"valid_sharpe {record['valid_sharpe']} {record['seconds']:.2f}s")
    return echo


def run_builtin(args) -> dict:
    return _run_backend(args, "builtin", lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_upstream(args) -> dict | None:
    """Same runs through tmpipe.engine.upstream; None unless both TMPIPE_TRADEMASTER_* are set.

    Upstream trains in child processes: peak RSS is the largest child's own (os.wait4), env
    steps/s use the exact steps of one upstream train episode (rows - lookback - 5 hindsight
    bars), and the children's wall times show upstream's fixed cost of starting three processes.
    """
    if not os.environ.get("TMPIPE_TRADEMASTER_HOME") or not os.environ.get("TMPIPE_TRADEMASTER_PYTHON"):
        return None

    def echo(seed: int):
        def report(event: dict) -> None:  # upstream's raw output lines carry no epoch; only records are shown
            if "epoch" in event and not args.json:
                print(f"[upstream] seed {seed} epoch {event['epoch']}: upstream valid return "
                      f"{event['valid_return']:+.4f} {event['seconds']:.2f}s")
        return report

    runs, hold, peaks = [], None, []
    with tempfile.TemporaryDirectory(prefix="tmpipe-bench-upstream-") as scratch:
        for seed in range(args.seed, args.seed + args.seeds):
            config = _config(args, seed, "upstream")
            result = train_backtest(config, symbol=args.symbol, out_dir=Path(scratch) / f"seed{seed}", progress=echo(seed))
            run = _summarise_run(result, config["data"]["lookback"])
            facts = result["upstream"]
            epoch_seconds = sum(e["seconds"] for e in result["epochs"])
            run["env_steps_per_second"] = len(result["epochs"]) * facts["train_env_steps_per_epoch"] / epoch_seconds
            run["process_seconds"] = {name: p["seconds"] for name, p in facts["processes"].items()}
            run["upstream_own_test_total_return"] = facts["test"]["upstream_total_return"]
            run["upstream_nonpositive_equity_bars"] = facts["test"]["upstream_nonpositive_equity_bars"]
            peaks.append(max(p["peak_rss_mb"] for p in facts["processes"].values()))
            runs.append(run)
            hold = {k: result["metrics"]["buy_and_hold"][k] for k in HEADLINE}
            if not args.json:
                t = run["test"]
                print(f"[upstream] seed {seed}: test sharpe {t['sharpe']} return {t['total_return']:+.4f} "
                      f"(upstream's own {run['upstream_own_test_total_return']:+.4f}; {run['wall_time_seconds']:.1f}s, "
                      f"processes {json.dumps({k: round(v, 1) for k, v in run['process_seconds'].items()})})")
    return {
        "runs": runs,
        "median_test_sharpe": statistics.median(r["test"]["sharpe"] if r["test"]["sharpe"] is not None else 0.0 for r in runs),
        "median_test_total_return": statistics.median(r["test"]["total_return"] for r in runs),
        "median_seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in runs),
        "median_env_steps_per_second": statistics.median(r["env_steps_per_second"] for r in runs),
        "buy_and_hold": hold,
        "peak_rss_mb": max(peaks),
    }


def ratios(builtin: dict, upstream: dict) -> dict:
    """builtin / upstream for times and memory; builtin - upstream for the median Sharpe."""
    def ratio(key):
        return builtin[key] / upstream[key] if upstream.get(key) else None
    return {
        "seconds_per_epoch": ratio("median_seconds_per_epoch"),
        "env_steps_per_second": ratio("median_env_steps_per_second"),
        "peak_rss_mb": ratio("peak_rss_mb"),
        "median_test_sharpe_difference": builtin["median_test_sharpe"] - upstream["median_test_sharpe"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=DEFAULT_DATA, help="TradeMaster split directory or bars file")
    parser.add_argument("--symbol", default="BTC")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (median test Sharpe over them)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPUs of this process)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    began = time.perf_counter()
    builtin = run_builtin(args)
    upstream = run_upstream(args)
    report = {
        "machine": {"cpu_model": cpu_model(), "cores": len(os.sched_getaffinity(0)),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version()},
        "data": args.data, "symbol": args.symbol, "epochs": args.epochs, "seeds": args.seeds,
        "builtin": builtin, "upstream": upstream,
        "ratios_builtin_over_upstream": ratios(builtin, upstream) if upstream else None,
        "total_seconds": time.perf_counter() - began,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return report


def _print_report(report: dict) -> None:
    m = report["machine"]
    print(f"\nmachine: {m['cpu_model']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)")
    for name in ("builtin", "upstream"):
        part = report[name]
        if part is None:
            print(f"{name}: skipped (set TMPIPE_TRADEMASTER_HOME and TMPIPE_TRADEMASTER_PYTHON)")
            continue
        print(f"{name}: {part['median_seconds_per_epoch']:.2f} s/epoch, {part['median_env_steps_per_second']:.0f} env steps/s, "
              f"peak RSS {part['peak_rss_mb']:.0f} MB, median test Sharpe {part['median_test_sharpe']:.3f} "
              f"over {len(part['runs'])} seed(s), median test return {part['median_test_total_return']:+.4f}")
        print(f"  buy-and-hold: return {part['buy_and_hold']['total_return']:+.4f}, Sharpe {part['buy_and_hold']['sharpe']:.3f}")
    if report["ratios_builtin_over_upstream"]:
        print("builtin / upstream:", json.dumps(report["ratios_builtin_over_upstream"]))
    print(f"total {report['total_seconds']:.1f}s")


if __name__ == "__main__":
    main()
