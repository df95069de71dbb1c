"""`tmpipe run` end to end on the embedded defaults: Airflow, MLflow and the WebUI store (mode both,
failures; train_backtest then inference is in test_local_run_models.py)."""

import os
import subprocess
import sys

import pytest

from tmpipe.store.sqlite import SqliteArtifactStore

from .conftest import mlflow_runs, run_tmpipe, spec_file, webui_artifacts, xcom_sizes

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
