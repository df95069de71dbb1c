"""The price of Airflow: `tmpipe run` against the same work in one plain Python process.

Both sides run the shipped spec plus a third symbol on a demo series (``--symbols``, default
SPX, NDX and RUT on the synthetic series) at the spec's default epochs, on the embedded
defaults (SQLite MLflow, embedded WebUI store, `rules` review), each in a TMPIPE_HOME of its
own. The Airflow side's database is migrated once before the trials (`tmpipe run` migrates on
every call, which on a migrated database only checks), and one uncounted round at 1 epoch
creates both sides' MLflow database and WebUI store. The plain side is this script with
``--plain``: one interpreter calling the pipeline's core stage functions (engine with its
evaluation, review, tracking, persist) in order, symbol by symbol, no Airflow. Trials
alternate; the ratio is median `tmpipe run` wall time over median plain wall time, both timed
from process start to exit, and the same for CPU time (user + system, from the children's
rusage; on a shared machine it moves less than wall time). ``--home DIR`` keeps both homes
across invocations (migrated and warmed once), so two checkouts can alternate invocation by
invocation.

The plain side also splits its time: imports (the stage modules and what they load), and per
symbol: data (the engine loading and splitting bars), training (the epochs, with their
per-epoch evaluation), evaluation and bundle (the engine's final backtests and saved model),
tracking (the train stage's MLflow runs, artifacts, registration), then the inference, review
and persist stages whole (each with its own tracking; inference loads the data again). Modules
a stage imports on first use are timed apart from the part they sit in, as that symbol's
``imports`` (see ImportClock); ``all_but_training`` is the rest, training and imports left out.

    .venv/bin/python benchmarks/e2e.py [--trials 2] [--home DIR] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "dag_specs" / "trademaster_autogen_pipeline_workflow.yaml"
THIRD = ("RUT", "synthetic")


def write_spec(folder: Path) -> Path:
    """The shipped spec plus the third symbol, whose data is a demo series."""
    spec = yaml.safe_load(SPEC.read_text())
    spec.setdefault("symbols", {})[THIRD[0]] = {"data": {"demo_series": THIRD[1]}}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


class ImportClock:
    """Wall and CPU seconds spent importing modules, wherever the import statement sits.

    The stages import heavy libraries where they first need them (MLflow's SQLAlchemy store on the
    first client, matplotlib on the first plot), so the first symbol's stages would carry the
    process's one-time imports. Wrapping importlib's ``_find_and_load`` (what every import statement
    and ``importlib.import_module`` call, and what ``-X importtime`` times) charges them to imports.
    Only the outermost import is timed: nested ones are inside it.
    """

    def __init__(self) -> None:
        import importlib._bootstrap as bootstrap

        self.wall = self.cpu = 0.0
        self._depth = 0
        self._original = bootstrap._find_and_load

        def find_and_load(name, import_):
            if self._depth:
                return self._original(name, import_)
            self._depth += 1
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return self._original(name, import_)
            finally:
                self._depth -= 1
                self.wall += time.perf_counter() - start
                self.cpu += time.process_time() - cpu_start

        bootstrap._find_and_load = find_and_load

    def read(self) -> tuple[float, float]:
        return self.wall, self.cpu


def plain(spec_path: Path, symbols: list[str], run_id: str) -> dict:
    """The DAG's work in this process: resolve, then per symbol the four stages. Timed by part."""
    began, cpu_began = time.perf_counter(), time.process_time()
    import_clock = ImportClock()
    import mlflow  # noqa: F401 - the imports every stage pays once

    from tmpipe.config.resolver import resolve_shared
    from tmpipe.engine import builtin as engine_builtin, walkforward
    from tmpipe.pipeline import stages
    from tmpipe.pipeline.context import RunContext
    from tmpipe.review import build_evidence, review_signal  # noqa: F401
    from tmpipe.runner import seed_demo_symbols
    from tmpipe.spec.loader import load_spec
    from tmpipe.store.factory import open_store
    from tmpipe.tracking import bundle_model, stage_logging  # noqa: F401

    imports, imports_cpu = time.perf_counter() - began, time.process_time() - cpu_began
    spec = load_spec(spec_path)
    seed_demo_symbols(spec, open_store(resolve_shared(spec).webui))
    ctx = RunContext(dag_id=spec.dag.dag_id, dag_run_id=run_id, logical_date=None, conf={"symbols": symbols},
                     spec_path=str(spec_path))
    selection = stages.resolve_symbols(ctx)

    # Time the engine, its data loading and its epochs from inside, by wrapping those functions
    # where the stages and the engine look them up. Every part is wall, CPU and the imports inside it.
    import tmpipe.engine

    parts: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def part(name):
        start, cpu_start = time.perf_counter(), time.process_time()
        import_wall, import_cpu = import_clock.read()
        try:
            yield
        finally:
            now_wall, now_cpu = import_clock.read()
            totals = parts.setdefault(name, [0.0, 0.0, 0.0, 0.0])
            for index, value in enumerate((time.perf_counter() - start, time.process_time() - cpu_start,
                                           now_wall - import_wall, now_cpu - import_cpu)):
                totals[index] += value

    def timed(name, function):
        def wrapper(*args, **kwargs):
            with part(name):
                return function(*args, **kwargs)
        return wrapper

    tmpipe.engine.train_backtest = timed("engine", tmpipe.engine.train_backtest)
    engine_builtin.load_dataset = timed("data", engine_builtin.load_dataset)
    walkforward.train = timed("training", walkforward.train)  # every walk-forward fold's training
    per_symbol, per_symbol_cpu = {}, {}
    for symbol in selection.symbols:
        link = selection.links[symbol]
        parts.clear()
        with part("train_backtest"):
            trained = stages.train_backtest(ctx, symbol, link)
        # Nested parts: data and training inside the engine, the engine inside train_backtest.
        split = {"data": parts["data"], "training": parts["training"],
                 "evaluation_and_bundle": [e - d - t for e, d, t in zip(parts["engine"], parts["data"], parts["training"])],
                 "tracking": [s - e for s, e in zip(parts["train_backtest"], parts["engine"])]}
        run_id = trained["mlflow_run_id"]  # handed over as the DAG's XCom does
        for name, stage_function in (("inference", stages.inference), ("review", stages.review),
                                     ("persist", stages.persist)):
            parts.clear()
            with part(name):
                stage_function(ctx, symbol, link, run_id=run_id)
            split[name] = parts[name]  # whole (inference loads the data again inside it)
        for column, offset, out in ((0, 2, per_symbol), (1, 3, per_symbol_cpu)):
            # Each part without the imports inside it; those are one row of their own.
            times = {name: values[column] - values[offset] for name, values in split.items()}
            times["imports"] = sum(values[offset] for values in split.values())
            times["all_but_training"] = sum(v for k, v in times.items() if k not in ("training", "imports"))
            out[symbol] = {k: round(v, 3) for k, v in times.items()}
    return {"imports": round(imports, 3), "imports_cpu": round(imports_cpu, 3),
            "symbols": per_symbol, "symbols_cpu": per_symbol_cpu, "total": round(time.perf_counter() - began, 3)}


def timed_run(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system of the child and its children) and stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, done.stdout


def spread(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median_s": round(statistics.median(values), 2), "q1_s": round(q[0], 2), "q3_s": round(q[2], 2),
            "min_s": round(min(values), 2), "max_s": round(max(values), 2), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--symbols", default=f"SPX,NDX,{THIRD[0]}")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--home", type=Path, help="keep both homes here (migrated and warmed once) across invocations")
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)  # internal: the plain side, with this spec
    parser.add_argument("--run-id", default="plain", help=argparse.SUPPRESS)
    args = parser.parse_args()
    symbols = args.symbols.split(",")
    if args.plain:
        print(json.dumps(plain(args.plain, symbols, args.run_id)))
        return

    from tmpipe import airflow_env

    with contextlib.ExitStack() as stack:
        folder = args.home or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tmpipe-e2e-")))
        folder.mkdir(parents=True, exist_ok=True)
        spec = write_spec(folder)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TMPIPE"))}
        base["AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY"] = "False"
        airflow_home, plain_home = folder / "airflow", folder / "plain"
        airflow_side = base | airflow_env.embedded_airflow_env(airflow_home) | {"TMPIPE_HOME": str(airflow_home),
                                                                             "TMPIPE_SPEC": str(spec)}
        plain_side = base | {"TMPIPE_HOME": str(plain_home)}
        warmed = folder / "warmed"
        if not warmed.exists():  # a --home kept from an earlier invocation is migrated and warm already
            subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=airflow_side, check=True, capture_output=True)
            # One uncounted round at 1 epoch: both homes create their MLflow database and store.
            warm = {"TMPIPE__TRADEMASTER__EPOCHS": "1"}
            timed_run([sys.executable, "-m", "tmpipe", "run", "--spec", str(spec), "--symbols", args.symbols], airflow_side | warm)
            timed_run([sys.executable, __file__, "--plain", str(spec), "--symbols", args.symbols, "--run-id", "warm"], plain_side | warm)
            warmed.write_text("")
        if not args.trials:
            return  # --trials 0: only prepare --home
        airflow_times, plain_times, airflow_cpu, plain_cpu, splits = [], [], [], [], []
        for _ in range(args.trials):
            seconds, cpu, out = timed_run([sys.executable, "-m", "tmpipe", "run", "--spec", str(spec), "--symbols",
                                           args.symbols, "--json"], airflow_side)
            airflow_times.append(seconds)
            airflow_cpu.append(cpu)
            seconds, cpu, out = timed_run([sys.executable, __file__, "--plain", str(spec), "--symbols", args.symbols,
                                           "--run-id", f"plain_{time.time_ns()}"], plain_side)
            plain_times.append(seconds)
            plain_cpu.append(cpu)
            splits.append(json.loads(out.strip().splitlines()[-1]))

    ratio = statistics.median(airflow_times) / statistics.median(plain_times)
    cpu_ratio = statistics.median(airflow_cpu) / statistics.median(plain_cpu)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count(), "load_average": os.getloadavg(),
                    "python": platform.python_version()},
        "symbols": symbols,
        "tmpipe_run": spread(airflow_times),
        "plain_process": spread(plain_times),
        "tmpipe_run_cpu": spread(airflow_cpu),
        "plain_process_cpu": spread(plain_cpu),
        "price_of_airflow": round(ratio, 2),
        "price_per_trial": [round(a / p, 2) for a, p in zip(airflow_times, plain_times)],
        "price_of_airflow_cpu": round(cpu_ratio, 2),
        "price_per_trial_cpu": [round(a / p, 2) for a, p in zip(airflow_cpu, plain_cpu)],
        "plain_split_per_trial": splits,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name, key in (("tmpipe run", "tmpipe_run"), ("plain process", "plain_process")):
        wall, cpu = report[key], report[f"{key}_cpu"]
        print(f"{name:15s} {wall['median_s']:.1f} s [{wall['min_s']}-{wall['max_s']}], CPU {cpu['median_s']:.1f} s [{cpu['min_s']}-{cpu['max_s']}]")
    print(f"price of Airflow {ratio:.2f}x (per trial {report['price_per_trial']}), "
          f"CPU {cpu_ratio:.2f}x (per trial {report['price_per_trial_cpu']})")
    last = splits[-1]
    print(f"plain imports {last['imports']:.2f} s (CPU {last['imports_cpu']:.2f} s)")
    for symbol, times in last["symbols"].items():
        print(f"  {symbol}: " + ", ".join(f"{k} {v}" for k, v in times.items()))
        print(f"  {symbol} CPU: " + ", ".join(f"{k} {v}" for k, v in last["symbols_cpu"][symbol].items()))


if __name__ == "__main__":
    main()
