"""Issue 16's test-suite target, side by side: a baseline commit's suite against today's run of its tests.

"Its tests" are today's tests whose function names already existed at the baseline (tests other
issues added since are measured apart, as the issue asks): the names come from the baseline's
``tests/**/test_*.py`` through git, the ids from today's collection. Today's subset runs with the
Makefile's command (two xdist workers, each test file in one); the baseline runs in its own checkout
with its own interpreter (``BASELINE_DIR/.venv/bin/python``) and the command it shipped (plain
pytest). Each is timed from start to exit: wall, and CPU as user + system of the child processes.
Run it on a quiet machine; the two runs take minutes each and run one after the other.

    .venv/bin/python benchmarks/suite.py [--baseline deab22b] [--baseline-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_NAME = re.compile(r"^\s*(?:async\s+)?def\s+(test_\w+)", re.MULTILINE)
SUMMARY = re.compile(r"^=*\s*(.*\bin [0-9.]+s.*?)\s*=*$", re.MULTILINE)


def names_at(commit: str) -> set[str]:
    """Test function names in the commit's test files."""
    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", commit, "tests"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    names: set[str] = set()
    for path in files:
        if Path(path).name.startswith("test_") and path.endswith(".py"):
            text = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True,
                                  text=True).stdout
            names.update(TEST_NAME.findall(text))
    return names


def todays_ids(names: set[str]) -> list[str]:
    """Today's test ids whose function (parameters left out) has a baseline name."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                         env=_env(), capture_output=True, text=True).stdout
    ids = [line.strip() for line in out.splitlines() if "::" in line]
    return [i for i in ids if i.split("::")[-1].split("[")[0] in names]


def timed(command: list[str], cwd: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summaries = SUMMARY.findall(done.stdout)
    return {"wall_s": round(wall, 1), "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 1),
            "exit_code": done.returncode, "summary": summaries[-1] if summaries else done.stdout[-500:]}


def _env() -> dict[str, str]:
    return {**os.environ, "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="deab22b", help="the commit whose tests and suite are the baseline")
    parser.add_argument("--baseline-dir", type=Path, help="a checkout of that commit with its own .venv (left out if not given)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    try:
        names = names_at(args.baseline)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"suite.py: cannot read the tests at {args.baseline} ({exc.stderr.strip()}); "
                         "a shallow clone needs `git fetch --unshallow`") from None
    ids = todays_ids(names)
    report: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": {"cores": os.cpu_count(), "load_average": os.getloadavg()},
                    "baseline": args.baseline, "baseline_names": len(names), "todays_ids": len(ids)}
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        listing.write("\n".join(ids) + "\n")
        listing.flush()
        report["today"] = timed([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-q",
                                 "-p", "no:cacheprovider", f"@{listing.name}"], ROOT)
    if args.baseline_dir:
        report["baseline_run"] = timed([str(args.baseline_dir / ".venv" / "bin" / "python"), "-m", "pytest", "-q",
                                        "-p", "no:cacheprovider"], args.baseline_dir)
        report["wall_ratio"] = round(report["today"]["wall_s"] / report["baseline_run"]["wall_s"], 2)
        report["cpu_ratio"] = round(report["today"]["cpu_s"] / report["baseline_run"]["cpu_s"], 2)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{len(ids)} of today's tests carry one of the {len(names)} test names at {args.baseline}")
    for name in ("today", "baseline_run"):
        if name in report:
            run = report[name]
            print(f"{name:12s} wall {run['wall_s']:7.1f} s  CPU {run['cpu_s']:7.1f} s  exit {run['exit_code']}  {run['summary']}")
    if "wall_ratio" in report:
        print(f"today / baseline: wall {report['wall_ratio']}, CPU {report['cpu_ratio']}")


if __name__ == "__main__":
    main()
