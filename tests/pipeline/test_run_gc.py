"""`tmpipe run` keeps its long-lived objects out of the garbage collector's traversals.

A run holds about a million tracked objects (Airflow with its in-process execution API, MLflow,
SQLAlchemy); every full collection, and the interpreter's collections at exit, traversed all of
them. Observed from inside a real run: a collector callback records the frozen count it sees, and
the last exit handler the frozen count at the end.
"""

import json
import os
import subprocess
import sys

import pytest

from .conftest import spec_file

pytestmark = pytest.mark.slow

PROBE = """
import atexit, gc, json, sys
seen = []
gc.callbacks.append(lambda phase, info: seen.append(gc.get_freeze_count()) if phase == "start" and info["generation"] == 2 else None)
# registered first, so it runs last: after the CLI's own exit path and every other exit handler
atexit.register(lambda: print("GC-PROBE " + json.dumps({"full_collections": len(seen), "max_frozen_in_run": max(seen, default=0),
                                                       "frozen_at_exit": gc.get_freeze_count()}), flush=True))
sys.argv = ["tmpipe", *sys.argv[1:]]
from tmpipe.cli import main
main()
"""


def test_a_run_freezes_its_long_lived_objects_and_exits_with_them_frozen(tmp_path, home):
    spec = spec_file(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "run", "--spec", str(spec), "--symbols", "AAA", "--mode", "train_backtest"],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "TMPIPE_HOME": str(home), "TMPIPE__TRADEMASTER__EPOCHS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("GC-PROBE ")]
    probe = json.loads(line.removeprefix("GC-PROBE "))
    # full collections still run during the run, over what was created since the last freeze
    assert probe["full_collections"] >= 1
    # imports and the DagBag frozen before dag.test(): tens of thousands of objects
    assert probe["max_frozen_in_run"] > 50_000, probe
    # and frozen again at exit, so the interpreter's last collections skip them
    assert probe["frozen_at_exit"] > 50_000, probe
