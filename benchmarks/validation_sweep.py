"""Choose a trademaster hyper-parameter on validation: median valid and test Sharpe per value and dataset.

Hyper-parameter defaults are picked by validation Sharpe only; test Sharpe is printed beside it
to show what the choice did, never to make it. Datasets: TradeMaster's BTC and FX splits (from
../shared/data, skipped when absent) and the embedded S&P 500 and NASDAQ demo series (ratio
splits). Each (dataset, value, seed) trains in a worker process; other keys stay at their
schema defaults unless given with --set.

    .venv/bin/python benchmarks/validation_sweep.py switch_penalty 0 0.5 1 2 [--seeds 10] [--epochs 2] [--json]
    .venv/bin/python benchmarks/validation_sweep.py reward_scale 1 2 3 5 10 --set switch_penalty=1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tmpipe.engine.defaults import default_config
from tmpipe.engine.metrics import sharpe_or_zero

SHARED = Path("/work/shared/data/trademaster/algorithmic_trading")
DATASETS = {
    "BTC": {"source": "csv", "path": str(SHARED / "BTC")},
    "FX": {"source": "csv", "path": str(SHARED / "FX")},
    "SP500": {"source": "demo", "demo_series": "sp500"},
    "NASDAQ": {"source": "demo", "demo_series": "nasdaq"},
}


def run_one(job: tuple[str, str, dict, int, int]) -> dict:
    """One seed's train_backtest with one setting; its validation and test Sharpe and turnover."""
    from tmpipe.engine.api import train_backtest

    dataset, key, setting, seed, epochs = job
    config = default_config(data=DATASETS[dataset], trademaster={
        "epochs": epochs, "seed": seed, "torch_threads": 1, "parallel_envs": 1, **setting})
    with tempfile.TemporaryDirectory(prefix="tmpipe-sweep-") as out:
        result = train_backtest(config, symbol=dataset, out_dir=Path(out))
    valid, test = result["metrics"]["valid"], result["metrics"]["test"]
    return {"dataset": dataset, "value": setting[key], "seed": seed,
            "valid_sharpe": sharpe_or_zero(valid), "test_sharpe": sharpe_or_zero(test),
            "valid_turnover": valid["turnover"], "test_turnover": test["turnover"]}


def summarise(runs: list[dict]) -> list[dict]:
    """Medians over seeds per (dataset, value)."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["value"]), []).append(run)
    return [{"dataset": dataset, "value": value, "seeds": len(group),
             **{f"median_{key}": statistics.median(r[key] for r in group)
                for key in ("valid_sharpe", "test_sharpe", "test_turnover")}}
            for (dataset, value), group in groups.items()]


def best_by_validation(rows: list[dict]) -> dict:
    """Per dataset, and over all datasets (sum of medians), the value with the best validation Sharpe."""
    best = {}
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        best[dataset] = max((r for r in rows if r["dataset"] == dataset), key=lambda r: r["median_valid_sharpe"])["value"]
    totals: dict[float, float] = {}
    for row in rows:
        totals[row["value"]] = totals.get(row["value"], 0.0) + row["median_valid_sharpe"]
    best["all datasets"] = max(totals, key=totals.get)
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("key", help="a numeric trademaster key, e.g. switch_penalty")
    parser.add_argument("values", type=json.loads, nargs="+", help="numbers (JSON: 1 stays an integer)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=NUMBER", help="hold another key at a value")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here (fresh seeds confirm a choice)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    datasets = [d for d in args.datasets if DATASETS[d]["source"] != "csv" or Path(DATASETS[d]["path"]).is_dir()]
    fixed = {key: json.loads(number) for key, number in (item.split("=", 1) for item in args.set)}
    jobs = [(d, args.key, {**fixed, args.key: v}, s, args.epochs)
            for d in datasets for v in args.values for s in range(args.first_seed, args.first_seed + args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        runs = []
        for run in pool.map(run_one, jobs):
            runs.append(run)
            if not args.json:
                print(f"[{len(runs)}/{len(jobs)}] {run['dataset']} {args.key} {run['value']} seed {run['seed']}: "
                      f"valid Sharpe {run['valid_sharpe']:+.3f} test Sharpe {run['test_sharpe']:+.3f}", flush=True)
    rows = summarise(runs)
    report = {"key": args.key, "fixed": fixed, "epochs": args.epochs, "seeds": args.seeds, "first_seed": args.first_seed, "skipped": sorted(set(args.datasets) - set(datasets)),
              "rows": rows, "best_by_validation": best_by_validation(rows), "runs": runs}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"\n{'dataset':8} {args.key:>14} {'valid Sharpe':>12} {'test Sharpe':>11} {'test turnover':>13}   (medians over {args.seeds} seeds)")
        for r in rows:
            print(f"{r['dataset']:8} {r['value']!s:>14} {r['median_valid_sharpe']:12.3f} "
                  f"{r['median_test_sharpe']:11.3f} {r['median_test_turnover']:13.3f}")
        print(f"best {args.key} by validation:", json.dumps(report["best_by_validation"]))
    return report


if __name__ == "__main__":
    main()
