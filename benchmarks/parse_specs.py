"""Parse time of the dags file with one spec against two (and N), as the DAG processor parses.

A long-lived parent has Airflow imported and forks one child per parse; each child runs the
dags file and reports how long it took. Settings alternate trial by trial, so both see the
same machine load. Prints medians with the interquartile range and the cost of each spec
after the first (the factory resolves nothing per symbol at parse time).

    .venv/bin/python benchmarks/parse_specs.py [--trials 15] [--specs 1,2,4] [--json]

For a baseline, run this file with another checkout's interpreter and ``--dags-file`` of that
checkout (a dags file that loads one spec whatever the folder holds: use ``--specs 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAGS_FILE = ROOT / "dags" / "trademaster_autogen_pipeline_workflow.py"
SPECS = sorted((ROOT / "dag_specs").glob("*.yaml"))


def specs_folder(count: int, into: Path) -> Path:
    """``count`` valid specs: the shipped ones, then copies of the first with their own dag_id."""
    folder = into / f"specs_{count}"
    folder.mkdir()
    for index in range(count):
        source = SPECS[index] if index < len(SPECS) else SPECS[0]
        text = source.read_text()
        if index >= len(SPECS):
            text = text.replace("dag_id: trademaster_autogen_pipeline_workflow", f"dag_id: copy_{index}")
        (folder / f"{index:02d}_{source.name}").write_text(text)
    return folder


def parse_once(folder: Path, dags_file: Path) -> tuple[float, int]:
    """Fork, run the dags file in the child with TMPIPE_SPECS_DIR=folder, return its seconds."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        os.environ.pop("TMPIPE_SPEC", None)
        os.environ["TMPIPE_SPECS_DIR"] = str(folder)
        import runpy

        start = time.perf_counter()
        namespace = runpy.run_path(str(dags_file))
        elapsed = time.perf_counter() - start
        dags = sum(type(v).__name__ == "DAG" for v in namespace.values())
        os.write(write, json.dumps([elapsed, dags]).encode())
        os._exit(0)
    os.close(write)
    payload = b""
    while chunk := os.read(read, 4096):
        payload += chunk
    os.close(read)
    os.waitpid(pid, 0)
    elapsed, dags = json.loads(payload)
    return elapsed, dags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--specs", default="1,2", help="comma-separated spec counts")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--dags-file", type=Path, default=DAGS_FILE)
    args = parser.parse_args()
    counts = [int(c) for c in args.specs.split(",")]
    os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")
    import airflow  # noqa: F401 - the DAG processor's parent has Airflow imported

    tmp = Path(tempfile.mkdtemp(prefix="tmpipe-parse-"))
    try:
        folders = {count: specs_folder(count, tmp) for count in counts}
        times: dict[int, list[float]] = {count: [] for count in counts}
        parse_once(folders[counts[0]], args.dags_file)  # warm the file cache
        for trial in range(args.trials):
            order = counts if trial % 2 == 0 else list(reversed(counts))
            for count in order:
                elapsed, dags = parse_once(folders[count], args.dags_file)
                assert dags == count, f"{count} specs gave {dags} DAGs"
                times[count].append(elapsed)
    finally:
        shutil.rmtree(tmp)
    report = {}
    for count, samples in times.items():
        q1, _, q3 = statistics.quantiles(samples, n=4)
        report[count] = {"median_ms": round(statistics.median(samples) * 1000, 1), "iqr_ms": [round(q1 * 1000, 1), round(q3 * 1000, 1)], "trials": len(samples)}
    base = report[counts[0]]["median_ms"]
    for count in counts[1:]:
        report[count]["per_extra_spec_ms"] = round((report[count]["median_ms"] - base) / (count - counts[0]), 1)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for count, row in report.items():
        extra = f", {row['per_extra_spec_ms']} ms per spec after the first" if "per_extra_spec_ms" in row else ""
        print(f"{count} spec(s): median {row['median_ms']} ms (IQR {row['iqr_ms'][0]}-{row['iqr_ms'][1]}, {row['trials']} trials){extra}")


if __name__ == "__main__":
    sys.exit(main())
