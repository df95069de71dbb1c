"""The stage functions without Airflow, on the real embedded MLflow and WebUI stores."""

import pytest

from tmpipe.config.sections import MlflowConfig
from tmpipe.errors import DataError
from tmpipe.pipeline import stages
from tmpipe.pipeline.context import RunContext
from tmpipe.store.sqlite import SqliteArtifactStore
from tmpipe.tracking.run_identity import resolve_tracking_uri

from .conftest import DAG_ID, spec_text


@pytest.fixture
def spec_path(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(spec_text())  # demo bars under defaults:, demo_symbols AAA and BBB
    return path


def context(spec_path, mode, symbol):
    return RunContext(dag_id=DAG_ID, dag_run_id=f"manual__{mode}", logical_date=None,
                      conf={"mode": mode, "symbol": symbol}, spec_path=str(spec_path))


def test_unconfigured_symbol_fails_before_anything_is_tracked_or_stored(tmpipe_home, spec_path):
    from mlflow import MlflowClient

    trained = stages.train_backtest(context(spec_path, "train_backtest", "AAA"), "AAA", None)
    assert trained["model_version"] == "1"  # the registry works here, so its silence below means something

    ctx = context(spec_path, "both", "X")
    selection = stages.resolve_symbols(ctx)
    assert selection.symbols == ["X"]
    with pytest.raises(DataError) as failed:
        stages.train_backtest(ctx, "X", selection.links["X"])
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("X: demo bars (synthetic) are for the spec's demo_symbols (AAA, BBB), not X; ")
    assert "(data.source demo set by spec defaults (" in message

    ctx = context(spec_path, "inference", "X")
    for stage in (stages.inference, stages.review, stages.persist):
        with pytest.raises(DataError, match="^X: demo bars"):
            stage(ctx, "X", selection.links["X"])

    client = MlflowClient(resolve_tracking_uri(MlflowConfig.from_values({}), tmpipe_home))
    assert [m.name for m in client.search_registered_models()] == ["tmpipe.AAA.deepscalper"]
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert {r.data.tags["symbol"] for r in client.search_runs(experiments)} == {"AAA"}
    assert [a.symbol for a in SqliteArtifactStore(tmpipe_home / "webui" / "webui.db").list_artifacts()] == []
    assert not (tmpipe_home / "work" / DAG_ID / "manual__both" / "X" / "train_backtest").exists()


def test_persisted_signal_names_its_bar_data_model_and_run(tmpipe_home, spec_path):
    import numpy as np

    store = SqliteArtifactStore(tmpipe_home / "webui" / "webui.db")
    ctx = context(spec_path, "both", "AAA")
    trained = stages.train_backtest(ctx, "AAA", None)
    run_id = trained["mlflow_run_id"]
    inferred = stages.inference(ctx, "AAA", None, run_id=run_id)
    stages.review(ctx, "AAA", None, run_id=run_id)
    persisted = stages.persist(ctx, "AAA", None, run_id=run_id)
    signal = store.get_artifact(persisted["signal_artifact_id"]).content
    five_weekday_bars_later = str(np.busday_offset(np.datetime64(inferred["as_of"]), 5))  # synthetic bars are weekdays
    assert {key: signal[key] for key in ("as_of", "horizon_end", "data_sha256", "model_version", "mlflow_run_id", "mlflow_run_url")} == {
        "as_of": inferred["as_of"],
        "horizon_end": five_weekday_bars_later,
        "data_sha256": trained["data_sha256"],
        "model_version": "models:/tmpipe.AAA.deepscalper/1",
        "mlflow_run_id": persisted["mlflow_run_id"],
        "mlflow_run_url": None,  # the embedded SQLite store has no UI
    }

    ctx = context(spec_path, "inference", "AAA")  # the promoted model: the alias moves, the version stays
    stages.inference(ctx, "AAA", None)
    stages.review(ctx, "AAA", None)
    signal = store.get_artifact(stages.persist(ctx, "AAA", None)["signal_artifact_id"]).content
    assert signal["lineage"]["model_uri"] == "models:/tmpipe.AAA.deepscalper@champion"
    assert (signal["model_version"], signal["as_of"]) == ("models:/tmpipe.AAA.deepscalper/1", inferred["as_of"])


def test_a_later_stage_logs_into_the_run_handed_over_not_one_a_tag_search_finds(tmpipe_home, spec_path, caplog):
    from mlflow import MlflowClient

    from tmpipe.tracking.run_identity import TAG_DAG_ID, TAG_DAG_RUN_ID, TAG_SYMBOL

    ctx = context(spec_path, "both", "AAA")
    trained = stages.train_backtest(ctx, "AAA", None)
    client = MlflowClient(resolve_tracking_uri(MlflowConfig.from_values({}), tmpipe_home))
    run = client.get_run(trained["mlflow_run_id"])
    identity = {key: run.data.tags[key] for key in (TAG_DAG_ID, TAG_DAG_RUN_ID, TAG_SYMBOL)}
    assert run.data.tags["tmpipe.stage"] == "train_backtest"

    other_symbols_run = client.create_run(run.info.experiment_id, tags={**identity, TAG_SYMBOL: "BBB"}).info.run_id
    inferred = stages.inference(ctx, "AAA", None, run_id=other_symbols_run)
    assert inferred["mlflow_run_id"] == trained["mlflow_run_id"]  # not BBB's run: found by AAA's tags instead
    assert f"MLflow run {other_symbols_run} handed over to AAA is not its run" in caplog.text

    # An older run with AAA's identity tags (a lost creation race): the tag search would pick it.
    older = client.create_run(run.info.experiment_id, start_time=run.info.start_time - 60_000, tags=identity).info.run_id
    reviewed = stages.review(ctx, "AAA", None, run_id=trained["mlflow_run_id"])
    assert reviewed["mlflow_run_id"] == trained["mlflow_run_id"] != older
    assert client.get_run(reviewed["mlflow_run_id"]).data.tags["tmpipe.stage"] == "review"
    assert "review/signal.json" not in [a.path for a in client.list_artifacts(older, "review")]


def test_a_symbol_stage_gives_its_tracker_the_run_identity_the_config_and_the_handed_over_run(tmpipe_home, spec_path):
    ctx = RunContext(dag_id=DAG_ID, dag_run_id="manual__1", logical_date="2024-06-03T00:00:00+00:00",
                     conf={"mode": "inference"}, spec_path=str(spec_path), map_index=2, try_number=3)
    stage = stages.SymbolStage(ctx, "AAA", None)
    tracker = stage.tracker(run_id="handed-over")
    identity = tracker.context
    assert (identity.dag_id, identity.dag_run_id, identity.symbol, identity.mode, identity.map_index,
            identity.try_number, identity.run_timestamp) == (DAG_ID, "manual__1", "AAA", "inference", 2, 3, "2024-06-03T00:00:00+00:00")
    assert identity.tracking_uri == resolve_tracking_uri(MlflowConfig.from_values({}), tmpipe_home)
    assert (tracker.handed_over_run_id, tracker.agent, tracker.config) == ("handed-over", "deepscalper", stage.config)
    assert tracker.run is None  # nothing touches MLflow before a stage opens the run
