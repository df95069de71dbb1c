"""`tmpipe run` over 1, 5, 20 and 50 symbols at small epochs: wall time and peak memory, and a PNG.

Each point is one `tmpipe run` process (the DAG runs in it through `dag.test()`, its tasks in
task processes it forks, a fresh one every TASKS_PER_PROCESS tasks; the run process lives for
the whole run, so its memory must not grow per symbol), on one TMPIPE_HOME whose Airflow
database is migrated and whose MLflow store exists (an uncounted 1-symbol run first). The
symbols are S001.. on the synthetic demo series, one `symbols:` entry each; the spec's
`limits.max_symbols` is raised to the largest count, parallelism (`dag.max_active_symbols`) is
the shipped spec's. Peak memory is the larger of the run process's peak RSS and its task
processes' (the kernel's, from `os.wait4`; CPU time likewise counts both);
this script imports nothing heavy before the runs, so its own RSS (the floor of a child's
figure, see README) stays small.

    .venv/bin/python benchmarks/scale.py [--counts 1,5,20,50] [--trials 3] [--epochs 1] [--png scale.png] [--json]

With ``--trials T`` each count runs T times, the counts in turn each round; each point is the
median with its min and max (error bars in the PNG).

``--growth N`` measures the growth itself: one `tmpipe run` over N symbols, in a child that
wraps its executor (tmpipe.task_processes) to read its own anonymous RSS (``RssAnon``, after a
``gc.collect()``) each time a symbol's stage returns, and the peak RSS of the task processes
it has reaped so far (they run the tasks, at most TASKS_PER_PROCESS each). `dag.test()` runs a stage for every
symbol before the next stage, so each stage's readings are that stage's symbols one after
another; the figure is the least-squares slope of each stage's readings past the first two
(warm-up: first imports, first MLflow client), in KB per symbol. It also reads ``VmHWM`` (the
peak RSS so far) after every task, to name the task that reached the run's peak. ``--growth 5,20``
runs the counts one after another on the same home, as the scale points do. With ``--traced``
the child (the run process; its task processes run untraced) also runs under tracemalloc and
reports the Python heap's slope beside the RSS one:
what Python objects keep, without the C allocator's and native libraries' share (slower).

At the run's end (before the run process unfreezes its objects) the child also reads what the
run process still holds: ``RssAnon``, the objects created since the freeze, and with ``--traced``
the Python heap; with two counts or more, ``between_runs`` gives each per added symbol, from the
smallest count to the largest. ``--tasks-per-process K`` sets TASKS_PER_PROCESS for those runs.

    .venv/bin/python benchmarks/scale.py --growth 20 [--traced] [--tasks-per-process K] [--epochs 1] [--json]
"""

from __future__ import annotations

import argparse
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


def write_spec(folder: Path, count: int, epochs: int) -> Path:
    spec = yaml.safe_load(SPEC.read_text())
    spec["limits"]["max_symbols"] = max(count, spec["limits"]["max_symbols"])
    spec["defaults"]["trademaster"]["epochs"] = epochs
    spec["symbols"] = {f"S{i:03d}": {"data": {"demo_series": "synthetic"}} for i in range(1, count + 1)}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run(spec: Path, symbols: list[str], env: dict[str, str]) -> dict:
    """One `tmpipe run`: wall and CPU seconds (user + system), peak RSS (MB) and the run's state."""
    command = [sys.executable, "-m", "tmpipe", "run", "--spec", str(spec), "--symbols", ",".join(symbols), "--json"]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    try:
        summary = json.loads(out)  # stdout is the run's JSON alone
    except ValueError:
        summary = {}
    succeeded = sum(row["status"] == "success" for row in summary.get("symbols", []))
    if os.waitstatus_to_exitcode(status) != 0 or succeeded != len(symbols):
        raise SystemExit(f"tmpipe run over {len(symbols)} symbols: {succeeded} succeeded: {out[-2000:]}")
    return {"symbols": len(symbols), "succeeded": succeeded, "seconds": round(seconds, 2), "seconds_per_symbol": round(seconds / len(symbols), 2),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [p["symbols"] for p in points]
    fig, left = plt.subplots(figsize=(7, 4))
    def spread(key: str) -> list[list[float]]:  # min..max around the median, as error bars
        return [[p[key] - p[f"{key}_min"] for p in points], [p[f"{key}_max"] - p[key] for p in points]]

    left.errorbar(counts, [p["seconds"] for p in points], yerr=spread("seconds"), fmt="o-", color="tab:blue", capsize=3)
    left.set_xlabel("symbols in one tmpipe run")
    left.set_ylabel("wall time (s)", color="tab:blue")
    right = left.twinx()
    right.errorbar(counts, [p["peak_rss_mb"] for p in points], yerr=spread("peak_rss_mb"), fmt="s--", color="tab:red", capsize=3)
    right.set_ylabel("peak RSS (MB)", color="tab:red")
    right.set_ylim(bottom=0)
    left.set_ylim(bottom=0)
    left.set_title(f"tmpipe run: wall time and peak memory by symbols (median, min-max of {points[0]['trials']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def status_kb(*fields: str) -> list[int]:
    """Fields of /proc/self/status in KB (``RssAnon``: anonymous memory now, ``VmHWM``: peak RSS so far)."""
    with open("/proc/self/status") as status:
        values = {line.split(":")[0]: int(line.split()[1]) for line in status if line.split(":")[0] in fields}
    return [values[field] for field in fields]


def growth_child(spec: Path, count: int, tasks_per_process: int | None = None) -> None:
    """In the child: one DAG run over ``count`` symbols; prints one JSON reading per finished stage task.

    Each task runs in a process the run process forks (tmpipe.task_processes); the readings are
    the run process's own, after each task's process has ended.
    """
    import gc
    import tracemalloc

    from tmpipe import task_processes
    from tmpipe.runner import run_local
    from tmpipe.task_processes import TaskProcessExecutor

    run_task = TaskProcessExecutor.run_task

    def measured(self, workload):
        state, why = run_task(self, workload)
        gc.collect()
        rss_anon, hwm = status_kb("RssAnon", "VmHWM")
        traced = tracemalloc.get_traced_memory()[0] // 1024 if tracemalloc.is_tracing() else None
        task_processes_hwm = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({"stage": workload.ti.task_id.split(".")[-1], "map_index": workload.ti.map_index, "state": str(state),
                          "rss_anon_kb": rss_anon, "vm_hwm_kb": hwm, "traced_kb": traced,
                          "task_processes_hwm_kb": task_processes_hwm}), file=sys.stderr, flush=True)
        return state, why

    end = TaskProcessExecutor.end

    def measured_end(self):
        """The run process at the run's end, before its objects are unfrozen: what it still holds."""
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] // 1024 if tracemalloc.is_tracing() else None
        print(json.dumps({"end": True, "rss_anon_kb": status_kb("RssAnon")[0], "objects_since_freeze": len(gc.get_objects()),
                          "traced_kb": traced}), file=sys.stderr, flush=True)
        end(self)

    TaskProcessExecutor.run_task = measured
    TaskProcessExecutor.end = measured_end
    if tasks_per_process:
        task_processes.TASKS_PER_PROCESS = tasks_per_process
    os.register_at_fork(after_in_child=tracemalloc.stop)  # --traced reads the run process; its task processes run untraced
    outcome = run_local(spec, {"symbols": [f"S{i:03d}" for i in range(1, count + 1)]})
    print(json.dumps({"state": outcome.state}), file=sys.stderr, flush=True)


def summarize_trials(runs: list[dict]) -> dict:
    """One scale point from its trials: the median of each figure, with its min and max."""
    point = {"symbols": runs[0]["symbols"], "trials": len(runs)}
    for key in ("seconds", "seconds_per_symbol", "cpu_seconds", "peak_rss_mb"):
        values = [r[key] for r in runs]
        point |= {key: round(statistics.median(values), 2), f"{key}_min": min(values), f"{key}_max": max(values)}
    return point


def between_runs(runs: list[dict]) -> dict | None:
    """What the run process still holds at the end of a run, per symbol, from the smallest count to the largest."""
    first, last = runs[0], runs[-1]
    if len(runs) < 2 or not (first["at_end"] and last["at_end"]) or first["symbols"] == last["symbols"]:
        return None
    added = last["symbols"] - first["symbols"]
    per_symbol = {key: round((last["at_end"][key] - first["at_end"][key]) / added, 1)
                  for key in ("rss_anon_kb", "objects_since_freeze", "traced_kb") if first["at_end"][key] is not None}
    return {"symbols": [first["symbols"], last["symbols"]], "per_symbol": per_symbol}


def slope(values: list[int]) -> float:
    """Least-squares slope of ``values`` against their index."""
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    return sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / sum((i - mean_x) ** 2 for i in range(n))


def growth(spec: Path, count: int, env: dict[str, str], traced: bool = False, tasks_per_process: int | None = None) -> dict:
    """Per-stage RSS growth in KB per symbol inside one long-lived `tmpipe run` process."""
    command = [sys.executable, __file__, "--growth-child", str(count), "--spec", str(spec)]
    if tasks_per_process:
        command += ["--tasks-per-process", str(tasks_per_process)]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env | ({"PYTHONTRACEMALLOC": "1"} if traced else {}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    readings, state, at_end = [], None, None
    for line in process.stderr:
        if line.startswith("{"):
            record = json.loads(line)
            if "end" in record:
                at_end = record
            elif "state" in record and "stage" not in record:
                state = record["state"]
            else:
                readings.append(record)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or state != "success":
        raise SystemExit(f"tmpipe run over {count} symbols: state {state}")
    def per_symbol(values: list[int]) -> float | None:
        """KB per symbol: the slope past the two warm-up readings, if enough remain."""
        return round(slope(values[2:]), 1) if len(values) > 3 else None

    stages = {}
    for stage in ("train_backtest", "inference", "review", "persist"):
        of_stage = [r for r in readings if r["stage"] == stage]
        values = [r["rss_anon_kb"] for r in of_stage]
        stages[stage] = {"rss_anon_mb_first": round(values[0] / 1024, 1), "rss_anon_mb_last": round(values[-1] / 1024, 1),
                         "kb_per_symbol": per_symbol(values), "rss_anon_kb": values}
        if traced:
            stages[stage]["traced_kb_per_symbol"] = per_symbol([r["traced_kb"] for r in of_stage])

    def all_stages(key: str) -> float:
        return round(sum(s[key] for s in stages.values() if s[key] is not None), 1)
    # Which task first reached the run's peak RSS (VmHWM after each task; the peak can only rise).
    peak_task = next((f"{r['stage']}[{r['map_index']}]" for r in readings if r["vm_hwm_kb"] == readings[-1]["vm_hwm_kb"]), None)
    tasks = [{"task": f"{r['stage']}[{r['map_index']}]", "vm_hwm_mb": round(r["vm_hwm_kb"] / 1024, 1),
              "task_processes_hwm_mb": round(r["task_processes_hwm_kb"] / 1024, 1)} for r in readings]
    return {"symbols": count, "seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "stages": stages, "kb_per_symbol_all_stages": all_stages("kb_per_symbol"),
            **({"traced_kb_per_symbol_all_stages": all_stages("traced_kb_per_symbol")} if traced else {}),
            "peak_reached_in": peak_task, "at_end": at_end, "tasks_per_process": tasks_per_process, "vm_hwm_after_each_task": tasks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,5,20,50")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--png", type=Path, default=ROOT / "benchmarks" / "scale.png")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--growth", metavar="N[,M...]", help="RSS growth per symbol inside one run over N symbols (then M, same home)")
    parser.add_argument("--traced", action="store_true", help="with --growth: also the Python heap's growth (tracemalloc)")
    parser.add_argument("--tasks-per-process", type=int, help="with --growth: TASKS_PER_PROCESS for these runs (default: tmpipe's)")
    parser.add_argument("--trials", type=int, default=1, help="runs per scale point, the counts in turn each round (median, min and max)")
    parser.add_argument("--growth-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.growth_child:
        growth_child(args.spec, args.growth_child, args.tasks_per_process)
        return
    counts = [int(c) for c in (args.growth or args.counts).split(",")]

    from tmpipe import airflow_env

    points = []
    with tempfile.TemporaryDirectory(prefix="tmpipe-scale-") as tmp:
        folder = Path(tmp)
        spec = write_spec(folder, max(counts), args.epochs)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TMPIPE"))}
        env |= airflow_env.embedded_airflow_env(folder / "home") | {
            "TMPIPE_HOME": str(folder / "home"), "TMPIPE_SPEC": str(spec), "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False"}
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        run(spec, ["S001"], env)  # uncounted: creates the MLflow store
        if args.growth:
            runs = [growth(spec, count, env, args.traced, args.tasks_per_process) for count in counts]
            report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "epochs": args.epochs,
                      "load_average": os.getloadavg(), "growth": runs, "between_runs": between_runs(runs)}
            print(json.dumps(report, indent=2 if args.json else None))
            return
        trials: dict[int, list[dict]] = {count: [] for count in counts}
        for _ in range(args.trials):  # round by round, so that a change in the machine's load touches every count
            for count in counts:
                trials[count].append(run(spec, [f"S{i:03d}" for i in range(1, count + 1)], env))
                print(json.dumps(trials[count][-1]), file=sys.stderr, flush=True)  # a partial result if a long count is cut off
        points = [summarize_trials(runs) for runs in trials.values()]
    orchestrator_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    plot(points, args.png)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count(), "load_average": os.getloadavg(),
                    "python": platform.python_version()},
        "epochs": args.epochs, "points": points, "png": str(args.png),
        "orchestrator_peak_rss_mb": round(orchestrator_rss, 1),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for p in points:
        print(f"{p['symbols']:>3} symbols: {p['seconds']:8.1f} s ({p['seconds_min']:.1f}-{p['seconds_max']:.1f}), "
              f"{p['seconds_per_symbol']:.1f} s/symbol, CPU {p['cpu_seconds']:.1f} s, "
              f"peak RSS {p['peak_rss_mb']:.0f} MB ({p['peak_rss_mb_min']:.0f}-{p['peak_rss_mb_max']:.0f})")


if __name__ == "__main__":
    main()
