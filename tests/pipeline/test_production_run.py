"""The production column end to end: `tmpipe run` against real servers on loopback.

MLflow is a real `mlflow server` with a fresh, migrated PostgreSQL database and served artifacts; the
WebUI is `tmpipe webui serve` in its own process, reached through a recording proxy so the
test sees the exact requests the pipeline made. Every process is stopped by its PID.
"""

from __future__ import annotations

import pytest

from tmpipe.store.http import HttpArtifactStore

from ..servers import WEBUI_TOKEN, ForwardingProxy, postgres_database
from ..servers import mlflow_server as serve_mlflow
from ..servers import webui_server as serve_webui
from .conftest import link_pipeline_symbols, run_tmpipe, spec_text

pytestmark = [pytest.mark.production, pytest.mark.slow]

LINK_CONFIG = {"trademaster": {"seed": 7}}


@pytest.fixture(scope="module")
def postgres_db():
    """MLflow's schema copied from a template migrated once (servers.template_database), not
    migrated again by the server: dozens of Alembic steps on PostgreSQL."""
    with postgres_database("tmpipe_pipeline", migrated="mlflow") as uri:
        yield uri


@pytest.fixture(scope="module")
def mlflow_server(postgres_db, tmp_path_factory) -> str:
    with serve_mlflow(postgres_db, tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture(scope="module")
def webui_server(tmp_path_factory) -> str:
    with serve_webui(tmp_path_factory.mktemp("webui-server") / "x.db") as url:
        yield url


@pytest.fixture(scope="module")
def webui_proxy(webui_server):
    """Forwards to the WebUI server and records each request, so the test can see the calls."""
    with ForwardingProxy(webui_server) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def webui(webui_server):
    """AAA and BBB linked to this DAG through the HTTP API, plus two symbols that must not run."""
    store = HttpArtifactStore(webui_server, token=WEBUI_TOKEN)
    link_pipeline_symbols(store, aaa_config=LINK_CONFIG, aaa_notes="production test")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def production(tmp_path_factory, migrated_home_copy, mlflow_server, webui_proxy, webui):
    """The spec (WebUI via the proxy) and the environment (MLflow server) of the runs."""
    root = tmp_path_factory.mktemp("production")
    spec = root / "spec.yaml"
    # The WebUI comes from the spec; the MLflow server from the environment layer; the WebUI's
    # token from TMPIPE_WEBUI_TOKEN, the default webui.token_env, as `tmpipe webui serve` reads it.
    spec.write_text(spec_text({"webui": {"backend": "http", "base_url": webui_proxy.url}}))
    env = {"TMPIPE__MLFLOW__TRACKING_URI": mlflow_server, "TMPIPE_WEBUI_TOKEN": WEBUI_TOKEN}
    home = migrated_home_copy(root / "home")  # Airflow's SQLite metadata, migrated once per session
    return dict(home=home, spec=spec, env=env, mlflow=mlflow_server, proxy=webui_proxy, store=webui)


def run_pipeline(production: dict, *args: str) -> tuple[int, dict]:
    return run_tmpipe(production["home"], "--spec", str(production["spec"]), *args, env=production["env"])


def mlflow_client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def all_runs(client, filter_string: str = "") -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=filter_string, max_results=100) if experiments else []


def runs_of_dag_run(client, dag_run_id: str) -> dict:
    runs = all_runs(client, f"tags.`airflow.dag_run_id` = '{dag_run_id}'")
    assert len(runs) == len({run.data.tags["symbol"] for run in runs}), "one MLflow run per symbol and DAG run"
    return {run.data.tags["symbol"]: run for run in runs}


def artifact_paths(client, run_id: str) -> set[str]:
    top = client.list_artifacts(run_id)
    return {a.path for a in top} | {a.path for d in top if d.is_dir for a in client.list_artifacts(run_id, d.path)}


def test_both_mode_with_symbols_from_the_webui(production):
    proxy = production["proxy"]
    proxy.seen.clear()
    client = mlflow_client(production["mlflow"])
    runs_before = len(all_runs(client))
    code, out = run_pipeline(production, "--mode", "both")  # no --symbols: the WebUI picks them
    assert code == 0, out
    assert ("GET", "/api/workflow-symbols/?enabled_only=true") in [(method, path) for method, path, _ in proxy.seen]
    rows = {row["symbol"]: row for row in out["symbols"]}
    assert list(rows) == ["AAA", "BBB"]  # by priority; OFF is disabled, ELSE is linked to another DAG
    assert out["tracking_uri"] == production["mlflow"]

    assert len(all_runs(client)) - runs_before == 2  # one run per symbol on the server, nothing else
    runs = runs_of_dag_run(client, out["dag_run_id"])
    assert set(runs) == {"AAA", "BBB"}
    for symbol, run in runs.items():
        row = rows[symbol]
        assert row["status"] == "success" and row["error"] is None
        assert row["mlflow_run_id"] == run.info.run_id and run.info.status == "FINISHED"
        assert row["mlflow_run_url"] == f"{production['mlflow']}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the server, not a local path
        assert "test_sharpe" in run.data.metrics
        assert {"backtest/equity_curve.png", "model/MLmodel", "review/trace.json", "review/signal.json"} <= artifact_paths(
            client, run.info.run_id
        )
    assert runs["AAA"].data.params["trademaster.seed"] == "7"  # the link's config layer
    assert runs["BBB"].data.params["trademaster.seed"] == "42"

    artifacts = production["store"].list_artifacts(dag_run_id=out["dag_run_id"])
    assert sorted((a.symbol, a.artifact_type) for a in artifacts) == [("AAA", "llm"), ("AAA", "signal"), ("BBB", "llm"), ("BBB", "signal")]
    for artifact in artifacts:
        run = runs[artifact.symbol]
        assert (artifact.mlflow_run_id, artifact.mlflow_experiment_id) == (run.info.run_id, run.info.experiment_id)
        assert rows[artifact.symbol][f"{artifact.artifact_type}_artifact_id"] == artifact.id
    for symbol in runs:
        signal_doc = next(a for a in artifacts if a.symbol == symbol and a.artifact_type == "signal").content
        assert signal_doc["action"] == rows[symbol]["action"]
        assert signal_doc["lineage"]["model_uri"] == f"runs:/{runs[symbol].info.run_id}/model"
        assert signal_doc["mlflow_run_url"] == rows[symbol]["mlflow_run_url"]  # the server has a UI
        assert signal_doc["model_version"] == f"models:/tmpipe.{symbol}.deepscalper/{runs[symbol].data.tags['registry.version']}"
    assert {a.symbol for a in production["store"].list_artifacts()} == {"AAA", "BBB"}


def test_train_backtest_then_inference_on_the_same_servers(production):
    code, trained = run_pipeline(production, "--symbols", "AAA,BBB", "--mode", "train_backtest")
    assert code == 0, trained
    assert all(row["status"] == "success" and row["signal_artifact_id"] is None for row in trained["symbols"])
    assert production["store"].list_artifacts(dag_run_id=trained["dag_run_id"]) == []

    code, inferred = run_pipeline(production, "--symbols", "AAA,BBB", "--mode", "inference")
    assert code == 0, inferred
    client = mlflow_client(production["mlflow"])
    training_runs = runs_of_dag_run(client, trained["dag_run_id"])
    inference_runs = runs_of_dag_run(client, inferred["dag_run_id"])
    assert set(training_runs) == set(inference_runs) == {"AAA", "BBB"}
    rows = {row["symbol"]: row for row in inferred["symbols"]}
    for symbol, run in inference_runs.items():
        assert rows[symbol]["status"] == "success" and rows[symbol]["action"] in ("BUY", "SELL", "HOLD")
        assert rows[symbol]["mlflow_run_id"] == run.info.run_id != training_runs[symbol].info.run_id
        assert run.data.tags["mode"] == "inference"
        assert run.data.tags["inference.model_uri"] == f"models:/tmpipe.{symbol}.deepscalper@champion"
        assert run.data.tags["inference.model_run_id"] == training_runs[symbol].info.run_id  # the model just trained
        assert not any(key.startswith("epoch/") for key in run.data.metrics)  # no training in this run
        assert "epoch/loss" in training_runs[symbol].data.metrics
    artifacts = production["store"].list_artifacts(dag_run_id=inferred["dag_run_id"])
    assert sorted((a.symbol, a.artifact_type) for a in artifacts) == [("AAA", "llm"), ("AAA", "signal"), ("BBB", "llm"), ("BBB", "signal")]
    for artifact in artifacts:
        assert artifact.mlflow_run_id == inference_runs[artifact.symbol].info.run_id
        if artifact.artifact_type == "signal":
            assert artifact.content["lineage"]["model_uri"] == f"models:/tmpipe.{artifact.symbol}.deepscalper@champion"
            trained_version = training_runs[artifact.symbol].data.tags["registry.version"]
            assert artifact.content["model_version"] == f"models:/tmpipe.{artifact.symbol}.deepscalper/{trained_version}"
            assert artifact.content["mlflow_run_url"] == rows[artifact.symbol]["mlflow_run_url"]
