"""Loading a symbol's bars: the engine's own table (``tmpipe.engine.bars``) against pandas.

Each trial is a fresh interpreter that loads one data set one way and reports the load's
wall and CPU time and the process's peak RSS. The work is the same both ways: read the file
(or the demo series), map column names, parse dates and numbers, validate the values and add
the z-features where the file lacks them; validation and features run on the same NumPy code
in both (a pandas engine would port them unchanged), so what differs is the reader, the table
type and the import they need:

- ``bars``: ``tmpipe.engine.data.normalise_bars`` on ``tmpipe.engine.bars.read_csv`` (what the
  engine does today); the demo series arrive as a pandas DataFrame from ``tmpipe.engine.demo``.
- ``pandas``: ``pandas.read_csv``, ``pandas.to_datetime``, ``pandas.to_numeric`` on a DataFrame.

Two contexts: ``isolated`` (nothing imported before the load: the cost a CLI or a notebook
pays) and ``stage`` (``import mlflow`` first, as every pipeline stage does before it loads
bars; mlflow imports pandas and pyarrow). Trials alternate between the two ways, context by
context, and the report gives per combination the median and the spread (min-max) of load
wall time, load CPU time, peak RSS and the peak RSS added by the load (peak after the load
minus the RSS before it). Both ways must give the same bars (the data fingerprint is compared).

    .venv/bin/python benchmarks/bars_load.py [--trials 9] [--train-trials 3] [--data-dir DIR] [--json]

``--train-trials`` also times whole training processes in isolation (``train_backtest`` on
BTC/BTC.csv, 1 epoch, 1 thread), alternating the same code with ``import pandas`` first or not:
peak RSS and CPU time of the process.

``--data-dir`` defaults to /work/shared/data/trademaster/algorithmic_trading (BTC/BTC.csv and
FX/data.csv); the demo case reads the S&P 500 series shipped by ``arch``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path("/work/shared/data/trademaster/algorithmic_trading")
WAYS = ("bars", "pandas")
CONTEXTS = ("isolated", "stage")


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_bars(case: str, where: str):
    from tmpipe.engine.bars import Bars, read_csv
    from tmpipe.engine.data import normalise_bars

    if case.startswith("demo:"):
        from tmpipe.engine import demo

        return normalise_bars(Bars.from_frame(demo.arch_series(case.removeprefix("demo:"))), "SPX", case)
    return normalise_bars(read_csv(Path(where)), case, where)


def _load_pandas(case: str, where: str):
    import pandas as pd

    from tmpipe.engine.bar_validation import check_columns, check_values
    from tmpipe.engine.bars import Bars
    from tmpipe.engine.data import _ALIASES
    from tmpipe.engine.features import FEATURES, PRICE_COLUMNS, TRADEMASTER_COLUMNS, add_z_features

    symbol = "SPX" if case.startswith("demo:") else case
    if case.startswith("demo:"):
        from tmpipe.engine import demo

        raw = demo.arch_series(case.removeprefix("demo:"))
    else:
        raw = pd.read_csv(where, encoding="utf-8-sig")
    keep = [c for c in raw.columns if not (str(c).startswith("Unnamed") or str(c).strip() == "")]
    raw = raw.loc[:, keep]
    raw.columns = [_ALIASES.get(str(c).strip().lower(), str(c).strip().lower()) for c in raw.columns]
    raw = raw.loc[:, ~raw.columns.duplicated()]
    check_columns(list(raw.columns), where)
    if "tic" in raw and raw["tic"].astype(str).nunique() > 1:
        raw = raw[raw["tic"].astype(str) == symbol]
    if "adjcp" not in raw:
        raw = raw.assign(adjcp=raw["close"])
    dates = raw["date"]
    if not pd.api.types.is_datetime64_any_dtype(dates):
        dates = pd.to_datetime(dates, errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    columns = {"tic": pd.Series(symbol, index=raw.index, dtype=object).to_numpy(),
               "date": dates.to_numpy("datetime64[ns]")}
    columns.update({c: pd.to_numeric(raw[c], errors="coerce").to_numpy("float64")
                    for c in [*PRICE_COLUMNS, *FEATURES] if c in raw})
    frame = Bars(columns)
    check_values(frame, where)
    if not all(f in frame for f in FEATURES):
        frame = add_z_features(frame)
    return frame.select(TRADEMASTER_COLUMNS)


def child(case: str, where: str, way: str, context: str) -> dict:
    started = time.perf_counter(), time.process_time()
    if context == "stage":
        import mlflow  # noqa: F401 - what a stage has imported before it reads bars
    ready = time.perf_counter(), time.process_time()
    rss_before = _rss_mb()
    frame = (_load_bars if way == "bars" else _load_pandas)(case, where)
    done = time.perf_counter(), time.process_time()
    from tmpipe.engine.data import fingerprint

    return {"load_wall_s": done[0] - ready[0], "load_cpu_s": done[1] - ready[1],
            "context_import_cpu_s": ready[1] - started[1], "rss_before_mb": rss_before, "peak_rss_mb": _peak_mb(),
            "load_added_peak_mb": _peak_mb() - rss_before, "rows": len(frame), "sha256": fingerprint(frame)["sha256"],
            "pandas_imported": "pandas" in sys.modules}


def train_child(path: str, pre: str, out_dir: str) -> dict:
    import resource

    if pre == "pandas":
        import pandas  # noqa: F401 - what any stage has imported through mlflow
    from tmpipe.engine.api import train_backtest
    from tmpipe.engine.defaults import default_config

    config = default_config(data={"source": "csv", "path": path}, trademaster={"epochs": 1, "torch_threads": 1})
    train_backtest(config, symbol="BTC", out_dir=Path(out_dir))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"pre_import": pre, "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
            "pandas_imported": "pandas" in sys.modules}


def _train_trials(path: str, trials: int) -> list[dict]:
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory(prefix="bars-load-train-") as scratch:
        for trial in range(trials):
            for pre in ("none", "pandas") if trial % 2 == 0 else ("pandas", "none"):
                out = subprocess.run([sys.executable, __file__, "--train-child", path, pre, f"{scratch}/{trial}-{pre}"],
                                     capture_output=True, text=True, check=True, cwd=ROOT)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return [{"pre_import": pre, **{key: _spread([r[key] for r in rows if r["pre_import"] == pre])
                                   for key in ("peak_rss_mb", "cpu_s")}} for pre in ("none", "pandas")]


def _trial(case: str, where: str, way: str, context: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", case, where, way, context], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=9)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--train-trials", type=int, default=0)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--train-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    if args.train_child:
        print(json.dumps(train_child(*args.train_child)))
        return
    cases = {"demo:sp500": "", "BTC": str(args.data_dir / "BTC" / "BTC.csv"), "FX": str(args.data_dir / "FX" / "data.csv")}
    runs: dict[tuple[str, str, str], list[dict]] = {}
    for trial in range(args.trials):
        for context in CONTEXTS:
            for case, where in cases.items():
                order = WAYS if trial % 2 == 0 else WAYS[::-1]  # alternate which way goes first
                for way in order:
                    runs.setdefault((case, context, way), []).append(_trial(case, where, way, context))
    rows = []
    for (case, context, way), trials in sorted(runs.items()):
        other = runs[(case, context, "pandas" if way == "bars" else "bars")]
        if {t["sha256"] for t in trials} != {t["sha256"] for t in other}:
            raise SystemExit(f"{case}: bars and pandas loaded different bars")
        rows.append({"case": case, "context": context, "way": way, "rows": trials[0]["rows"],
                     "pandas_imported": trials[0]["pandas_imported"],
                     **{key: _spread([t[key] for t in trials])
                        for key in ("load_wall_s", "load_cpu_s", "peak_rss_mb", "load_added_peak_mb")}})
    report = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
              "trials": args.trials, "rows": rows,
              "training": _train_trials(cases["BTC"], args.train_trials) if args.train_trials else []}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{args.trials} trials per row, load average {report['load_average'][0]:.1f}; median [min, max]")
    print(f"{'case':11} {'context':8} {'way':6} {'rows':>5} {'load wall s':>22} {'load CPU s':>22} "
          f"{'peak RSS MB':>20} {'added by load MB':>20}")
    for row in rows:
        cells = [f"{row[k]['median']:.3f} [{row[k]['min']:.3f}, {row[k]['max']:.3f}]" for k in ("load_wall_s", "load_cpu_s")]
        cells += [f"{row[k]['median']:.0f} [{row[k]['min']:.0f}, {row[k]['max']:.0f}]"
                  for k in ("peak_rss_mb", "load_added_peak_mb")]
        print(f"{row['case']:11} {row['context']:8} {row['way']:6} {row['rows']:5} " + " ".join(f"{c:>22}" for c in cells))
    for row in report["training"]:
        print(f"training on BTC, pandas imported first: {row['pre_import']:6} peak RSS MB "
              f"{row['peak_rss_mb']['median']:.0f} [{row['peak_rss_mb']['min']:.0f}, {row['peak_rss_mb']['max']:.0f}], "
              f"CPU s {row['cpu_s']['median']:.2f} [{row['cpu_s']['min']:.2f}, {row['cpu_s']['max']:.2f}]")


if __name__ == "__main__":
    main()
