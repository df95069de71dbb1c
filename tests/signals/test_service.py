"""Scoring persisted signals in a real embedded WebUI store, with metrics in a real MLflow store."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from tmpipe.signals.service import score_symbol
from tmpipe.spec.loader import load_spec
from tmpipe.store.models import ArtifactCreate
from tmpipe.store.sqlite import SqliteArtifactStore

from .conftest import HORIZON_BARS, make_signal

SPEC = "dag_specs/trademaster_autogen_pipeline_workflow.yaml"
SCORER = {"dag_id": "trademaster_autogen_pipeline_workflow", "dag_run_id": "scheduled__2024-05-01"}


def _persist(store, series, indices, foresight):
    for index in indices:
        signal = make_signal("SPX", series, index, foresight=foresight)
        saved = store.save_artifact(ArtifactCreate(dag_id="d", dag_run_id=f"run-{index}", symbol="SPX",
                                                   artifact_type="signal", content=signal))
        store.set_lineage(saved.id, f"mlflow-run-{index}", "1")


def _at(series, index) -> datetime:
    return datetime.fromtimestamp(series.dates[index].astype("datetime64[s]").astype(int), tz=timezone.utc)


@pytest.mark.parametrize("foresight, hit_rate", [("perfect", 1.0), ("inverted", 0.0)])
def test_each_signal_is_graded_once_and_only_after_its_horizon(tmpipe_home, series, foresight, hit_rate):
    store = SqliteArtifactStore(tmpipe_home / "webui.db")
    spec = load_spec(SPEC)
    indices = list(range(0, 60, HORIZON_BARS))
    _persist(store, series, indices, foresight)
    loader = lambda data, symbol: series  # the bars the data source holds; known_at cuts them at grading time

    early = score_symbol(spec, "SPX", store, scored_by=SCORER, graded_at=_at(series, 27), series_loader=loader)
    assert (early.newly_graded, early.pending) == (5, 7)  # as_of 0..20 have their 5 bars by bar 27; 25 needs bar 30
    assert early.record["hit_rate"] == hit_rate and early.mlflow_run_id

    later = score_symbol(spec, "SPX", store, scored_by=SCORER, graded_at=_at(series, 79), series_loader=loader)
    again = score_symbol(spec, "SPX", store, scored_by=SCORER, graded_at=_at(series, 79), series_loader=loader)
    assert (later.newly_graded, later.pending) == (7, 0)
    assert (again.newly_graded, again.pending) == (0, 0)
    scores = store.list_artifacts(symbol="SPX", artifact_type="signal_score")
    assert len(scores) == len(indices) and all(s.revision == 1 for s in scores)
    assert again.record["hit_rate"] == hit_rate and again.record["graded"] == 12

    # Each score has the scoring run's identity and MLflow run, and names the graded signal and its MLflow run.
    assert {(s.dag_id, s.dag_run_id) for s in scores} == {(SCORER["dag_id"], SCORER["dag_run_id"])}
    first = next(s for s in scores if s.content["signal"]["dag_run_id"] == "run-0")
    signal = store.list_artifacts(dag_run_id="run-0", artifact_type="signal")[0]
    assert first.graded_signal_id == first.content["signal"]["artifact_id"] == signal.id
    assert (first.content["signal"]["mlflow_run_id"], first.content["signal"]["mlflow_experiment_id"]) == ("mlflow-run-0", "1")
    assert first.mlflow_run_id == early.mlflow_run_id and first.content["scored_by"] == SCORER
    assert {s.mlflow_run_id for s in scores} == {early.mlflow_run_id, later.mlflow_run_id}
    cost = 0.001 + 0.0005
    move = series.close[5] / series.close[0] - 1
    assert first.content["pnl"] == pytest.approx((abs(move) if foresight == "perfect" else -abs(move)) - 2 * cost)

    from tmpipe.config.sections import MlflowConfig
    from tmpipe.tracking import client_for, resolve_tracking_uri

    metrics = client_for(resolve_tracking_uri(MlflowConfig.from_values({}), tmpipe_home)).get_run(again.mlflow_run_id).data.metrics
    assert metrics["signals.hit_rate"] == hit_rate and metrics["signals.graded"] == 12
    assert np.isclose(metrics["signals.cumulative_pnl"], again.record["cumulative_pnl"])


def test_another_scoring_run_grades_none_of_the_graded_signals_again(tmpipe_home, series):
    store = SqliteArtifactStore(tmpipe_home / "webui.db")
    _persist(store, series, [0, 5, 10], "perfect")
    loader = lambda data, symbol: series
    spec = load_spec(SPEC)
    first = score_symbol(spec, "SPX", store, scored_by=SCORER, graded_at=_at(series, 12), series_loader=loader, log_mlflow=False)
    other = {"dag_id": "tmpipe-cli", "dag_run_id": "cli__20240601T000000"}
    second = score_symbol(spec, "SPX", store, scored_by=other, graded_at=_at(series, 79), series_loader=loader, log_mlflow=False)
    assert (first.newly_graded, second.newly_graded) == (2, 1)
    by_run = {}
    for score in store.list_artifacts(artifact_type="signal_score"):
        by_run.setdefault(score.dag_run_id, []).append(score.content["signal"]["dag_run_id"])
    assert by_run == {SCORER["dag_run_id"]: ["run-0", "run-5"], other["dag_run_id"]: ["run-10"]}


def test_a_dag_runs_scoring_uses_the_config_its_symbol_stages_resolved(tmpipe_home, series):
    """dag_run.conf and the symbol's WebUI link layer reach the data and the costs, as in the symbol's stages."""
    from tmpipe.config.sections import WebuiConfig
    from tmpipe.signals.service import score_run
    from tmpipe.store.factory import embedded_store_path

    store = SqliteArtifactStore(embedded_store_path(tmpipe_home))
    _persist(store, series, [0], "perfect")
    seen = []

    def loader(data, symbol):
        seen.append(data)
        return series

    links = {"SPX": {"link_id": 7, "notes": None,
                     "config": {"data": {"demo_series": "nasdaq", "lookback": 7},
                                "trademaster": {"transaction_cost_pct": 0.002}}}}
    out = score_run(load_spec(SPEC), ["SPX"], dag_id=SCORER["dag_id"], dag_run_id=SCORER["dag_run_id"],
                    webui=WebuiConfig.from_values({"backend": "embedded"}), conf_config={"trademaster": {"slippage_pct": 0.001}}, links=links,
                    series_loader=loader)
    assert out["errors"] == {} and out["graded"] == 1
    assert (seen[0].demo_series, seen[0].lookback) == ("nasdaq", 7)
    [score] = store.list_artifacts(artifact_type="signal_score")
    assert score.content["cost_rate"] == pytest.approx(0.002 + 0.001)
