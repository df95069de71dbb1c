"""Parse time of the generated DAG file against a hand-written twin, as Airflow's DAG processor parses.

The processor is a long-lived parent with Airflow imported that, per parse, pre-imports the
``airflow.*`` modules the DAG file names (``[dag_processor] parsing_pre_import_modules``) and
forks a child that runs ``_parse_file`` (BundleDagBag, then serialisation). This script does
the same with Airflow's own functions: one long-lived parent per DAG file (this script with
``--serve``) imports ``airflow.dag_processing.processor``, calls ``_pre_import_airflow_modules``
for its file, and per request forks a child that times ``_parse_file``. Trials alternate between
the files; the report gives medians with their quartiles, and the per-trial ratio's quartiles.

Also measured: the generated DAG with 1, 10 and 100 per-symbol overrides in its spec, and a
task's own re-parse (a fresh interpreter, as a task process starts: importing the task runner,
then BundleDagBag of the file, ``safe_mode=False``). Each child checks that the parse opened no
socket and did not create the Airflow database.

    .venv/bin/python benchmarks/parse.py [--trials 15] [--task-trials 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "dags" / "trademaster_autogen_pipeline_workflow.py"
TWIN = ROOT / "benchmarks" / "dags" / "handwritten_twin.py"
SPEC = ROOT / "dag_specs" / "trademaster_autogen_pipeline_workflow.yaml"
OVERRIDES = (1, 10, 100)

TASK_REPARSE = r"""
import os, sys, time
began = time.perf_counter()
from airflow.sdk.execution_time import task_runner
from airflow.dag_processing.dagbag import BundleDagBag
imported = time.perf_counter()
path = sys.argv[1]
bag = BundleDagBag(dag_folder=path, safe_mode=False, load_op_links=False, bundle_path=os.path.dirname(path), bundle_name="bench")
parsed = time.perf_counter()
assert bag.dags and not bag.import_errors, bag.import_errors
print(imported - began, parsed - imported)
"""


def spec_with_overrides(count: int, folder: Path) -> Path:
    """The shipped spec plus ``count`` symbols, each with its own trademaster/data overrides."""
    spec = yaml.safe_load(SPEC.read_text())
    symbols = spec.setdefault("symbols", {})
    for i in range(count - len(symbols)):
        symbols[f"SYM{i:03d}"] = {"data": {"demo_series": "sp500"}, "trademaster": {"epochs": 2 + i % 5, "seed": i}}
    path = folder / f"spec_{count}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def parse_in_child(path: Path, database: Path) -> tuple[float, float]:
    """Fork, run Airflow's ``_parse_file`` on ``path`` in the child; its wall and CPU seconds."""
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file, _pre_import_airflow_modules

    import structlog

    log = structlog.get_logger()
    _pre_import_airflow_modules(str(path), log)  # the processor does this before every parse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: what the processor's forked parser does
        os.close(read)
        status = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)  # the parse's own log lines
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            sockets: list[object] = []
            original_connect = socket.socket.connect

            def record_connect(self, address):
                sockets.append(address)
                return original_connect(self, address)

            socket.socket.connect = record_connect
            began, cpu_began = time.perf_counter(), time.process_time()
            result = _parse_file(DagFileParseRequest(file=str(path), bundle_path=path.parent, bundle_name="bench",
                                                     callback_requests=[]), log)
            seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
            problems = []
            if result is None or not result.serialized_dags or result.import_errors:
                problems.append(f"parse failed: {result and result.import_errors}")
            if sockets:
                problems.append(f"opened sockets: {sockets}")
            if database.exists():
                problems.append("created the Airflow database")
            os.write(write, json.dumps({"seconds": seconds, "cpu": cpu, "problems": problems}).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read() or '{"problems": ["child died"]}')
    os.waitpid(pid, 0)
    if report["problems"]:
        raise SystemExit(f"{path.name}: {'; '.join(report['problems'])}")
    return report["seconds"], report["cpu"]


def serve(path: Path, database: Path) -> None:
    """A processor parent for one DAG file: one parse per line on stdin, its seconds on stdout."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # Airflow's log lines
    import airflow.dag_processing.processor  # noqa: F401 - the processor parent's own imports

    for _ in sys.stdin:
        out.write("%r %r\n" % parse_in_child(path, database))
        out.flush()


class Parent:
    """A running ``--serve`` process."""

    def __init__(self, path: Path, database: Path, env: dict[str, str]):
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(path), "--database", str(database)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        env=env, text=True)

    def parse(self) -> tuple[float, float]:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the parent for {self.process.args[3]} failed (rerun it with --serve to see why)")
        wall, cpu = line.split()
        return float(wall), float(cpu)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def spread(values: list[float], scale: float = 1000, unit: str = "_ms") -> dict:
    """Median, quartiles and range (seconds shown as ms by default)."""
    v = sorted(x * scale for x in values)
    q1, _, q3 = statistics.quantiles(v, n=4) if len(v) > 1 else (v[0], 0, v[0])
    return {f"median{unit}": round(statistics.median(v), 2), f"q1{unit}": round(q1, 2), f"q3{unit}": round(q3, 2),
            f"min{unit}": round(v[0], 2), f"max{unit}": round(v[-1], 2), "n": len(v)}


def compare(times: dict[str, list[float]], name: str) -> dict:
    twin, values = times["handwritten_twin"], times[name]
    return spread(values) | {"ratio_to_twin": round(statistics.median(values) / statistics.median(twin), 2),
                             "ratio_per_trial": spread([a / b for a, b in zip(values, twin)], 1, "")}


def task_reparse(path: Path, env: dict[str, str], trials: int) -> dict:
    imports, parses = [], []
    for _ in range(trials):
        out = subprocess.run([sys.executable, "-c", TASK_REPARSE, str(path)], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        imports.append(float(out[-2]))
        parses.append(float(out[-1]))
    return {"imports": spread(imports), "parse": spread(parses)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=15, help="parses per file, alternating")
    parser.add_argument("--task-trials", type=int, default=5, help="fresh-interpreter re-parses per file")
    parser.add_argument("--generated", type=Path, default=GENERATED,
                        help="the generated DAG file to measure (e.g. an older commit's, for a baseline)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--database", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.database)
    generated = args.generated.resolve()

    # A deployment imports the project from bytecode; compile it here even where the shell sets
    # PYTHONDONTWRITEBYTECODE (otherwise every child compiles tmpipe from source).
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(ROOT / d) for d in ("tmpipe", "operators", "dags", "benchmarks/dags"))],
                   check=True, env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    with tempfile.TemporaryDirectory(prefix="tmpipe-parse-") as tmp:
        folder = Path(tmp)
        database = folder / "airflow.db"
        env = {
            "AIRFLOW_HOME": str(folder), "TMPIPE_HOME": str(folder / "home"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
        }
        os.environ.update(env)
        specs = {n: spec_with_overrides(n, folder) for n in OVERRIDES}
        cases = {"handwritten_twin": (TWIN, {}), "generated": (generated, {"TMPIPE_SPEC": str(SPEC)})}
        cases |= {f"generated_{n}_overrides": (generated, {"TMPIPE_SPEC": str(specs[n])}) for n in OVERRIDES}
        parents = {name: Parent(path, database, os.environ | extra) for name, (path, extra) in cases.items()}
        try:
            for parent in parents.values():  # warm the page cache
                parent.parse()
            times: dict[str, list[float]] = {name: [] for name in cases}
            cpu_times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.trials):
                for name, parent in parents.items():
                    wall, cpu = parent.parse()
                    times[name].append(wall)
                    cpu_times[name].append(cpu)
        finally:
            for parent in parents.values():
                parent.close()
        # Wall time, and the child's CPU time, which a loaded machine disturbs far less. Per-trial
        # ratios (trial i of each file ran back to back), so the spread is the ratio's own.
        results = {name: {"wall": compare(times, name), "cpu": compare(cpu_times, name)} for name in cases}
        child_env = os.environ | {"TMPIPE_SPEC": str(SPEC)}
        reparse = {"handwritten_twin": task_reparse(TWIN, child_env, args.task_trials),
                   "generated": task_reparse(generated, child_env, args.task_trials)}

    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_average": os.getloadavg(), "python": platform.python_version()},
        "generated_file": str(generated),
        "processor_parse": results,
        "task_reparse": reparse,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'file':<28} {'clock':<5} {'median ms':>10} {'q1-q3 ms':>14} {'x twin':>7} {'per-trial x twin q1-q3':>23}")
    for name, clocks in results.items():
        for clock, r in clocks.items():
            ratio = r["ratio_per_trial"]
            print(f"{name:<28} {clock:<5} {r['median_ms']:>10.1f} {r['q1_ms']:>6.1f}-{r['q3_ms']:<7.1f} {r['ratio_to_twin']:>7.2f}"
                  f" {ratio['median']:>9.2f} [{ratio['q1']:.2f}-{ratio['q3']:.2f}]")
    for name, r in reparse.items():
        print(f"task re-parse {name:<16} imports {r['imports']['median_ms']:.0f} ms, parse {r['parse']['median_ms']:.0f} ms"
              f" ({r['parse']['q1_ms']:.0f}-{r['parse']['q3_ms']:.0f})")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
