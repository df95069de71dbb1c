"""`tmpipe run` end to end on the embedded defaults: Airflow, MLflow and the WebUI store."""

import os
import subprocess
import sys

import pytest
import yaml

from tmpipe.store.sqlite import SqliteArtifactStore

from .conftest import mlflow_runs, run_tmpipe, spec_file, spec_text, webui_artifacts, xcom_sizes

pytestmark = pytest.mark.slow


def test_both_mode_two_symbols_then_rerunning_the_same_dag_run_leaves_counts_unchanged(tmp_path, pipeline_spec, home):
    """One home, two runs of the same DAG run: the first shows what a both-mode run leaves in
    Airflow, MLflow and the WebUI store; the re-run shows it replaces that run's results in place."""
    args = ("--spec", str(pipeline_spec), "--symbols", "AAA,BBB", "--mode", "both", "--logical-date", "2024-06-03T00:00:00+0000")
    code, out = run_tmpipe(home, *args, env={"TMPIPE__REVIEW__MLFLOW_TRACING": "true"})
    assert code == 0, out
    assert out["state"] == "success"
    rows = {row["symbol"]: row for row in out["symbols"]}
    assert set(rows) == {"AAA", "BBB"}
    for row in rows.values():
        assert row["status"] == "success" and row["error"] is None
        assert row["action"] in ("BUY", "SELL", "HOLD") and 0 <= row["confidence"] <= 1

    client, runs = mlflow_runs(home, out["tracking_uri"])
    assert sorted(r.data.tags["symbol"] for r in runs) == ["AAA", "BBB"]
    for run in runs:
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | {
            a.path for d in ("backtest", "review", "model", "engine") for a in client.list_artifacts(run.info.run_id, d)
        }
        assert {"backtest/equity_curve.png", "review/signal.json", "review/trace.json", "model/MLmodel"} <= artifacts
        assert "test_sharpe" in run.data.metrics and run.info.status == "FINISHED"
        assert rows[run.data.tags["symbol"]]["mlflow_run_id"] == run.info.run_id
        assert "/dags/trademaster_autogen_pipeline_workflow/runs/" in run.data.tags["airflow.task_url"]

    traces = client.search_traces(locations=[runs[0].info.experiment_id])
    assert sorted(t.info.request_metadata.get("mlflow.traceName", t.data.spans[0].name) for t in traces) == ["tmpipe.review AAA", "tmpipe.review BBB"]

    artifacts = webui_artifacts(home)
    assert sorted((a.symbol, a.artifact_type) for a in artifacts) == [("AAA", "llm"), ("AAA", "signal"), ("BBB", "llm"), ("BBB", "signal")]
    run_ids = {r.data.tags["symbol"]: (r.info.run_id, r.info.experiment_id) for r in runs}
    for artifact in artifacts:
        assert (artifact.mlflow_run_id, artifact.mlflow_experiment_id) == run_ids[artifact.symbol]
    assert {rows[s]["signal_artifact_id"] for s in rows} == {a.id for a in artifacts if a.artifact_type == "signal"}

    oversized = {key: size for key, size in xcom_sizes(home).items() if size >= 4096}
    assert oversized == {}

    # The re-run: same DAG run id, same MLflow runs and WebUI artifacts, the first content kept as a revision.
    code, again = run_tmpipe(home, *args, env={"TMPIPE__REVIEW__MLFLOW_TRACING": "true"})
    assert code == 0, again
    assert out["dag_run_id"] == again["dag_run_id"] == "manual__2024-06-03T00:00:00+00:00"
    _, runs = mlflow_runs(home, again["tracking_uri"])
    assert len(runs) == 2
    assert {r["mlflow_run_id"] for r in out["symbols"]} == {r["mlflow_run_id"] for r in again["symbols"]}
    assert {int(r.data.tags["airflow.try_number"]) for r in runs} == {1}  # the re-run replaced the DAG run: try 1 again
    artifacts = webui_artifacts(home)
    assert len(artifacts) == 4
    assert {r["signal_artifact_id"] for r in out["symbols"]} == {r["signal_artifact_id"] for r in again["symbols"]}
    store = SqliteArtifactStore(home / "webui" / "webui.db")
    for artifact in artifacts:  # the re-run's content replaced the first run's, which is kept
        assert artifact.revision == 2
        [kept] = store.list_revisions(artifact.id)
        assert kept.replaced_by == "content" and kept.content != artifact.content
        assert kept.mlflow_run_id == artifact.mlflow_run_id  # same MLflow run: lineage unchanged


def test_one_symbol_failing_does_not_stop_the_other(tmp_path, pipeline_spec, home):
    code, out = run_tmpipe(home, "--spec", str(pipeline_spec), "--symbols", "BROKEN,AAA")
    assert code == 1 and out["state"] == "failed"
    rows = {row["symbol"]: row for row in out["symbols"]}
    assert rows["AAA"]["status"] == "success" and rows["AAA"]["signal_artifact_id"] is not None
    assert rows["BROKEN"]["status"] == "failed"
    assert rows["BROKEN"]["error"].startswith("train_backtest: DataError:") and "no_such_bars.csv" in rows["BROKEN"]["error"]
    assert {(a.symbol, a.artifact_type) for a in webui_artifacts(home)} == {("AAA", "signal"), ("AAA", "llm")}


def test_bad_mode_in_conf_fails_before_any_work(tmp_path, pipeline_spec):
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "tmpipe", "run", "--spec", str(pipeline_spec), "--conf", '{"mode": "sideways"}'],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPIPE_HOME": str(home)},
    )
    assert result.returncode == 1
    assert "dag_run.conf:1:1: mode: 'sideways' is not one of ['both', 'train_backtest', 'inference']" in result.stderr
    assert not (home / "mlflow").exists()


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


def test_unconfigured_symbol_fails_in_one_line_and_leaves_nothing(tmp_path, pipeline_spec, home):
    """The issue's case: {"symbol": "X"} with demo bars under defaults: must not train on them."""
    code, out = run_tmpipe(home, "--spec", str(pipeline_spec), "--conf", '{"symbol": "X"}')
    assert code == 1 and out["state"] == "failed"
    [row] = out["symbols"]
    assert (row["symbol"], row["status"], row["mlflow_run_id"], row["signal_artifact_id"]) == ("X", "failed", None, None)
    assert row["error"].startswith("train_backtest: DataError: X: demo bars (synthetic) are for the spec's demo_symbols (AAA, BBB), not X;")
    assert "\n" not in row["error"]
    client, runs = mlflow_runs(home, out["tracking_uri"])
    assert runs == [] and client.search_registered_models() == []
    assert webui_artifacts(home) == []


def test_named_symbols_beyond_the_cap_fail_the_run_and_the_exit_code(tmp_path, home):
    args = ("--spec", str(spec_file(tmp_path, limits={"max_symbols": 1})), "--symbols", "AAA,BBB")
    code, out = run_tmpipe(home, *args)
    assert code == 1 and out["state"] == "failed" and out["symbols"] == []
    assert out["error"].startswith(
        "resolve_symbols: SymbolSelectionError: dag_run.conf names 2 symbols but limits.max_symbols is 1, so these would not run: BBB"
    )
    table = subprocess.run(
        [sys.executable, "-m", "tmpipe", "run", *args], capture_output=True, text=True, env={**os.environ, "TMPIPE_HOME": str(home)}
    )
    assert table.returncode == 1
    assert "error: resolve_symbols: SymbolSelectionError: dag_run.conf names 2 symbols" in table.stdout
    assert "dag run manual__" in table.stdout and ": failed;" in table.stdout


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
