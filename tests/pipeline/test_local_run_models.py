"""`tmpipe run` end to end on the embedded defaults: train_backtest, then inference on the model
it promoted or the gate's reasons why it did not (test_local_run.py has the both-mode runs; two
files, so the two test workers share these runs); and, observed from inside one of these runs,
that a run keeps its long-lived objects out of the garbage collector's traversals."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from .conftest import mlflow_runs, run_tmpipe, spec_file, spec_text, webui_artifacts

pytestmark = pytest.mark.slow

# A run holds about a million tracked objects (Airflow with its in-process execution API, MLflow,
# SQLAlchemy); every full collection, and the interpreter's collections at exit, traversed all of
# them. `tmpipe run` under this probe: a collector callback records the frozen count it sees, and
# the last exit handler the frozen count at the end, printed after the run's own output.
GC_PROBE = """
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


def test_train_backtest_on_the_capped_webui_symbols_then_inference_uses_the_promoted_model(tmp_path, pipeline_spec, home):
    """One home, two runs. train_backtest on the symbols of the embedded store (seeded with AAA
    and BBB) under a cap of 1: it trains AAA and names BBB in the JSON. Then inference of AAA and
    BBB without the cap: AAA uses the model just promoted, BBB was never trained."""
    (tmp_path / "capped").mkdir()
    capped = spec_file(tmp_path / "capped", limits={"max_symbols": 1})
    code, trained = run_tmpipe(home, "--spec", str(capped), "--mode", "train_backtest")
    assert code == 0, trained
    assert trained["state"] == "success" and [row["symbol"] for row in trained["symbols"]] == ["AAA"]
    assert trained["dropped_symbols"] == ["BBB"] and trained["error"] is None
    assert trained["symbols"][0]["status"] == "success" and trained["symbols"][0]["action"] is None
    assert webui_artifacts(home) == []

    code, inferred = run_tmpipe(home, "--spec", str(pipeline_spec), "--symbols", "AAA,BBB", "--mode", "inference")
    assert code == 1, inferred  # BBB was never trained
    rows = {row["symbol"]: row for row in inferred["symbols"]}
    assert rows["AAA"]["status"] == "success" and rows["AAA"]["action"] in ("BUY", "SELL", "HOLD")
    assert rows["BBB"]["status"] == "failed"
    assert rows["BBB"]["error"] == (
        "inference: ModelNotPromotedError: symbol BBB has no model with alias champion in registered model "
        "tmpipe.BBB.deepscalper; run mode train_backtest first"
    )
    client, runs = mlflow_runs(home, inferred["tracking_uri"])
    inference_run = client.get_run(rows["AAA"]["mlflow_run_id"])
    assert inference_run.data.tags["mode"] == "inference"
    assert inference_run.data.tags["inference.model_uri"] == "models:/tmpipe.AAA.deepscalper@champion"
    assert not any(key.startswith("epoch/") for key in inference_run.data.metrics)  # no training here
    assert inference_run.data.params["trademaster.epochs"] == "2"  # the config is logged by the first stage run
    assert {(a.symbol, a.artifact_type) for a in webui_artifacts(home)} == {("AAA", "signal"), ("AAA", "llm")}


@pytest.fixture(scope="module")
def gate_runs(tmp_path_factory, migrated_home_copy) -> dict:
    """One home, two runs under a gate no model passes: train_backtest of AAA (under GC_PROBE),
    then inference of AAA; with the scratch of AAA after each."""
    root = tmp_path_factory.mktemp("gate")
    home = migrated_home_copy(root / "home")
    strict = {**yaml.safe_load(spec_text())["defaults"], "mlflow": {"promotion": {
        "require_beat_buy_and_hold": False, "max_drawdown": 0.0001, "require_skill": False, "beat_baselines": []}}}
    spec = str(spec_file(root, defaults=strict))
    scratch = home / "work" / "trademaster_autogen_pipeline_workflow"
    probed = subprocess.run(
        [sys.executable, "-c", GC_PROBE, "run", "--spec", spec, "--symbols", "AAA", "--mode", "train_backtest", "--json"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "TMPIPE_HOME": str(home)},
    )
    output, printed, probe = probed.stdout.partition("GC-PROBE ")
    start = output.find("{\n")
    assert printed and start >= 0, f"exit {probed.returncode}:\n{probed.stdout[-3000:]}\n{probed.stderr[-3000:]}"
    runs = {"trained": (probed.returncode, json.loads(output[start:])), "gc": json.loads(probe)}
    runs["scratch_after_training"] = [path.name for path in scratch.glob("*/AAA")]
    runs["inferred"] = run_tmpipe(home, "--spec", spec, "--symbols", "AAA", "--mode", "inference")
    runs["scratch_after_inference"] = [path.name for path in scratch.glob("*/AAA")]
    return runs


def test_a_model_that_fails_the_gate_says_why_in_the_json_and_in_the_next_inference(gate_runs):
    """The operator's view: train_backtest's row names the version and the gate's reasons, its
    scratch is gone, and inference right after says why there is no champion."""
    code, trained = gate_runs["trained"]
    assert code == 0, trained
    [row] = trained["symbols"]
    assert (row["model_name"], row["model_version"], row["promoted"]) == ("tmpipe.AAA.deepscalper", "1", False)
    [reason] = row["gate_reasons"]
    assert reason.startswith("max drawdown ") and reason.endswith(" > 0.0001")
    assert gate_runs["scratch_after_training"] == []

    code, inferred = gate_runs["inferred"]
    assert code == 1
    assert inferred["symbols"][0]["error"] == (
        "inference: ModelNotPromotedError: symbol AAA has no model with alias champion in registered model "
        f"tmpipe.AAA.deepscalper; latest version 1 was not promoted: {reason}"
    )
    assert gate_runs["scratch_after_inference"] == ["AAA"]  # kept: it failed


def test_a_run_freezes_its_long_lived_objects_and_exits_with_them_frozen(gate_runs):
    code, _ = gate_runs["trained"]
    assert code == 0
    probe = gate_runs["gc"]
    # full collections still run during the run, over what was created since the last freeze
    assert probe["full_collections"] >= 1
    # imports and the DagBag frozen before dag.test(): tens of thousands of objects
    assert probe["max_frozen_in_run"] > 50_000, probe
    # and frozen again at exit, so the interpreter's last collections skip them
    assert probe["frozen_at_exit"] > 50_000, probe
