"""The production column: a real `mlflow server` on loopback with a PostgreSQL backend.

The test creates a fresh database, starts the server with served artifacts in tmp, runs the
whole tracking flow through HTTP, then stops the server by its PID and drops the database.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import httpx
import pytest

from tmpipe.errors import ModelNotPromotedError
from tmpipe.tracking import (
    client_for,
    end_run,
    get_or_create_run,
    load_promoted_model,
    log_config,
    log_review,
    log_train_backtest,
    register_and_promote,
    run_url,
)

from ..servers import mlflow_server as serve_mlflow
from ..servers import postgres_database

pytestmark = [pytest.mark.production, pytest.mark.slow]


@pytest.fixture
def postgres_db() -> str:
    with postgres_database("tmpipe_mlflow") as uri:
        yield uri


@pytest.fixture
def mlflow_server(postgres_db, tmp_path) -> str:
    with serve_mlflow(postgres_db, tmp_path) as uri:
        yield uri


def test_full_flow_against_mlflow_server_with_postgres(
    mlflow_server, context_factory, engine_result_factory, tmp_path, promotion
):
    uri = mlflow_server
    ctx = context_factory(tracking_uri=uri)
    first = get_or_create_run(ctx)
    assert get_or_create_run(context_factory(tracking_uri=uri, try_number=2)) == first
    assert first.artifact_uri.startswith("mlflow-artifacts:")
    client = client_for(uri)
    assert len(client.search_runs([first.experiment_id])) == 1

    config = {"trademaster": {"epochs": 3}, "review": {"model_client": {"api_key": "sk-prod-secret"}}}
    for _ in range(2):
        log_config(first.run_id, config, {"trademaster.epochs": "spec defaults"}, tracking_uri=uri)
    result = engine_result_factory()
    for _ in range(2):
        log_train_backtest(first.run_id, result, tmp_path / "out", tracking_uri=uri)
    params = client.get_run(first.run_id).data.params
    assert params == {"trademaster.epochs": "3"}
    assert sorted(m.step for m in client.get_metric_history(first.run_id, "epoch/loss")) == [1, 2, 3]

    with pytest.raises(ModelNotPromotedError, match="run mode train_backtest first"):
        load_promoted_model(uri, "tmpipe", "AAPL", "dqn", "champion", tmp_path / "dl")
    outcome = register_and_promote(first.run_id, "AAPL", "dqn", result, promotion, "tmpipe", tracking_uri=uri)
    assert outcome["promoted"] is True and outcome["version"] == "1"

    promoted = load_promoted_model(uri, "tmpipe", "AAPL", "dqn", "champion", tmp_path / "dl")
    bundle = Path(result["model_dir"])
    names = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    assert sorted(str(p.relative_to(promoted.model_dir)) for p in promoted.model_dir.rglob("*") if p.is_file()) == names
    assert filecmp.cmpfiles(bundle, promoted.model_dir, names, shallow=False)[0] == names
    assert promoted.engine_result["excess_return"] == result["excess_return"]

    signal_doc = {"action": "HOLD", "confidence": 0.4, "token_usage": {"prompt": 10, "completion": 5}}
    log_review(first.run_id, b'{"e":1}', signal_doc, {"entries": []}, tracking_uri=uri)
    end_run(uri, first.run_id, "FINISHED")
    finished = client.get_run(first.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.tags["signal.action"] == "HOLD"
    link = run_url(uri, first.experiment_id, first.run_id)
    assert link == f"{uri}/#/experiments/{first.experiment_id}/runs/{first.run_id}"
    assert httpx.get(link.split("#")[0], timeout=10).status_code == 200
