"""The scoring step of a real DAG run grades the symbol's earlier signals once their horizon has elapsed."""

from __future__ import annotations

import pytest

from tmpipe.signals.backfill import backfill
from tmpipe.spec.loader import load_spec
from tmpipe.store.sqlite import SqliteArtifactStore

from ..pipeline.conftest import DAG_ID, mlflow_runs, run_tmpipe, spec_file

pytestmark = pytest.mark.slow


def test_a_dag_run_grades_earlier_signals_and_reports_them(tmp_path, monkeypatch):
    # A home with no Airflow database: the suite's one end-to-end run that migrates it first,
    # as a first `tmpipe run` does (the other runs start from the session's migrated copy).
    home = tmp_path / "home"
    monkeypatch.setenv("TMPIPE_HOME", str(home))
    spec = spec_file(tmp_path)
    store = SqliteArtifactStore(home / "webui" / "webui.db")
    earlier = backfill(load_spec(spec), "AAA", store, max_signals=3)  # persisted, not graded
    assert earlier.signals == 3 and store.list_artifacts(artifact_type="signal_score") == []
    # The symbol's WebUI link sets its costs: the run's stages and its scoring use them.
    store.add_symbol("AAA")
    store.add_link("AAA", DAG_ID, config={"trademaster": {"transaction_cost_pct": 0.002}})

    code, out = run_tmpipe(home, "--spec", str(spec), "--symbols", "AAA")
    assert code == 0, out
    scores = out["signal_scores"]
    assert scores["errors"] == {} and scores["graded"] == 3
    # The run's own signal is for the data's last bar: its horizon has not elapsed.
    assert (scores["symbols"]["AAA"]["newly_graded"], scores["symbols"]["AAA"]["pending"]) == (3, 1)
    graded = store.list_artifacts(artifact_type="signal_score")
    assert len(graded) == 3
    # Under the DAG run's identity, naming the graded (backfilled) signals and their MLflow run.
    assert {(a.dag_id, a.dag_run_id) for a in graded} == {(DAG_ID, out["dag_run_id"])}
    assert {a.content["scored_by"]["dag_run_id"] for a in graded} == {out["dag_run_id"]}
    assert [a.content["cost_rate"] for a in graded] == pytest.approx([0.002 + 0.0005] * 3)
    backfilled = {a.id: a.dag_run_id for a in store.list_artifacts(artifact_type="signal") if a.dag_run_id.startswith("backfill__")}
    assert {a.graded_signal_id: a.content["signal"]["dag_run_id"] for a in graded} == backfilled
    assert {a.content["signal"]["mlflow_run_id"] for a in graded} == {earlier.mlflow_run_id}

    client, runs = mlflow_runs(home, out["tracking_uri"])
    scoring = [r for r in runs if r.data.tags.get("tmpipe.kind") == "signal_scores"]
    assert len(scoring) == 1 and scoring[0].data.metrics["signals.graded"] == 3
    assert {a.mlflow_run_id for a in graded} == {scoring[0].info.run_id}
    assert [r.info.run_id for r in runs if r.data.tags.get("tmpipe.kind") == "signals_backfill"] == [earlier.mlflow_run_id]

