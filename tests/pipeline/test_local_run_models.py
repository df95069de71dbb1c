"""`tmpipe run` end to end on the embedded defaults: train_backtest, then inference on the model
it promoted or the gate's reasons why it did not (test_local_run.py has the both-mode runs; two
files, so the two test workers share these runs)."""

import pytest
import yaml

from .conftest import mlflow_runs, run_tmpipe, spec_file, spec_text, webui_artifacts

pytestmark = pytest.mark.slow


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


def test_a_model_that_fails_the_gate_says_why_in_the_json_and_in_the_next_inference(tmp_path, home):
    """The operator's view: train_backtest's row names the version and the gate's reasons, its
    scratch is gone, and inference right after says why there is no champion."""
    strict = {**yaml.safe_load(spec_text())["defaults"], "mlflow": {"promotion": {
        "require_beat_buy_and_hold": False, "max_drawdown": 0.0001, "require_skill": False, "beat_baselines": []}}}
    spec = str(spec_file(tmp_path, defaults=strict))
    code, trained = run_tmpipe(home, "--spec", spec, "--symbols", "AAA", "--mode", "train_backtest")
    assert code == 0, trained
    [row] = trained["symbols"]
    assert (row["model_name"], row["model_version"], row["promoted"]) == ("tmpipe.AAA.deepscalper", "1", False)
    [reason] = row["gate_reasons"]
    assert reason.startswith("max drawdown ") and reason.endswith(" > 0.0001")
    assert list((home / "work" / "trademaster_autogen_pipeline_workflow").glob("*/AAA")) == []

    code, inferred = run_tmpipe(home, "--spec", spec, "--symbols", "AAA", "--mode", "inference")
    assert code == 1
    assert inferred["symbols"][0]["error"] == (
        "inference: ModelNotPromotedError: symbol AAA has no model with alias champion in registered model "
        f"tmpipe.AAA.deepscalper; latest version 1 was not promoted: {reason}"
    )
    assert [path.name for path in (home / "work" / "trademaster_autogen_pipeline_workflow").glob("*/AAA")] == ["AAA"]  # kept: it failed
