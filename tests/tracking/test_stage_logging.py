"""Stage logging into a real SQLite store; every function twice on the same run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tmpipe.tracking import (
    client_for,
    get_or_create_run,
    log_config,
    log_inference,
    log_review,
    log_train_backtest,
)

RESOLVED = {
    "data": {"source": "csv", "lookback": 60},
    "trademaster": {"agent": "dqn", "epochs": 3, "hidden_sizes": [64, 32]},
    "review": {"model_client": {"kind": "openai", "api_key": "sk-should-never-appear",
                                "base_url": "http://127.0.0.1:9/v1"}, "auth_token": "tok-secret"},
    "mlflow": {"tracking_uri": None, "experiment": "x"},
    "webui": {"password": "hunter2"},
}
PROVENANCE = {"data.lookback": "spec symbols.AAPL", "trademaster": "schema defaults",
              "review.model_client.base_url": "environment TMPIPE__REVIEW__..."}


def _artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_log_config_params_yaml_and_no_secrets(context_factory, tracking_uri, tmp_path):
    run = get_or_create_run(context_factory())
    assert log_config(run.run_id, RESOLVED, PROVENANCE, tracking_uri=tracking_uri) == {}
    assert log_config(run.run_id, RESOLVED, PROVENANCE, tracking_uri=tracking_uri) == {}
    client = client_for(tracking_uri)
    params = client.get_run(run.run_id).data.params
    assert params["data.lookback"] == "60"
    assert params["trademaster.hidden_sizes"] == "[64, 32]"
    assert params["mlflow.tracking_uri"] == "null"
    assert not [k for k in params if any(s in k.lower() for s in ("key", "token", "password", "secret"))]
    assert not [v for v in params.values() if "sk-should" in v or "hunter2" in v or "tok-secret" in v]

    local = Path(client.download_artifacts(run.run_id, "config/resolved_config.yaml", str(tmp_path)))
    text = local.read_text()
    assert "sk-should-never-appear" not in text and "hunter2" not in text
    document = yaml.safe_load(text)
    assert document["keys"]["data.lookback"] == {"value": 60, "set_by": "spec symbols.AAPL"}
    assert document["keys"]["trademaster.epochs"]["set_by"] == "schema defaults"
    assert document["resolved"]["webui"]["password"] == "[REDACTED]"


def test_log_config_keeps_first_value_when_config_changes_between_tries(context_factory, tracking_uri):
    run = get_or_create_run(context_factory())
    log_config(run.run_id, RESOLVED, PROVENANCE, tracking_uri=tracking_uri)
    changed = {**RESOLVED, "data": {"source": "csv", "lookback": 90}}
    assert log_config(run.run_id, changed, PROVENANCE, tracking_uri=tracking_uri) == {"data.lookback": "90"}
    assert client_for(tracking_uri).get_run(run.run_id).data.params["data.lookback"] == "60"


def test_log_train_backtest_twice_is_harmless(context_factory, engine_result_factory, tracking_uri, tmp_path):
    run = get_or_create_run(context_factory())
    result = engine_result_factory()
    refs = log_train_backtest(run.run_id, result, tmp_path / "out", tracking_uri=tracking_uri)
    again = log_train_backtest(run.run_id, result, tmp_path / "out", tracking_uri=tracking_uri)
    assert refs == again == {
        "model_uri": f"runs:/{run.run_id}/model",
        "equity_plot": "backtest/equity_curve.png",
        "engine_result": "engine/result.json",
    }
    client = client_for(tracking_uri)
    for key in ("epoch/loss", "epoch/train_return", "epoch/valid_return", "epoch/valid_sharpe"):
        history = client.get_metric_history(run.run_id, key)
        assert sorted(m.step for m in history) == [1, 2, 3], key
    assert len(client.get_metric_history(run.run_id, "test_total_return")) == 1
    metrics = client.get_run(run.run_id).data.metrics
    assert metrics["test_total_return"] == 0.12
    assert metrics["bh_total_return"] == 0.05
    assert metrics["valid_sharpe"] == 1.1  # the chosen model, not the last epoch (0.9)
    assert metrics["epoch/valid_sharpe"] == pytest.approx(0.9)
    assert metrics["excess_return"] == result["excess_return"]
    assert metrics["bh_bars_per_year"] == 252
    assert metrics["skill_p_value"] == 0.01 and metrics["deflated_sharpe_ratio"] == 0.97
    assert metrics["oos_sharpe"] == 1.1 and metrics["oos_trades"] == 4
    assert metrics["baseline_buy_and_hold_sharpe"] == 0.6 and "baseline_flat_sharpe" not in metrics  # undefined
    assert metrics["sharpe_minus_ma_crossover"] == 0.1

    tags = client.get_run(run.run_id).data.tags
    assert tags["data.sha256"] == "cd" * 32
    assert tags["data.rows"] == "1060"
    assert tags["backtest.last_action"] == "long"

    paths = _artifact_paths(client, run.run_id)
    assert {"backtest/equity_curve.csv", "backtest/equity_curve.png", "engine/result.json",
            "model/MLmodel", "model/python_model.pkl", "model/artifacts/bundle/weights.pt",
            "model/artifacts/bundle/nested/features.json"} <= paths
    png = Path(client.download_artifacts(run.run_id, "backtest/equity_curve.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    logged = json.loads(Path(client.download_artifacts(run.run_id, "engine/result.json", str(tmp_path))).read_text())
    assert logged["metrics"] == result["metrics"]


def test_log_inference_and_review(context_factory, tracking_uri, tmp_path):
    run = get_or_create_run(context_factory())
    inference = {
        "schema_version": 1, "kind": "inference", "backend": "builtin", "symbol": "AAPL",
        "as_of": "2024-03-12", "action": "long", "target_position": 1.0,
        "q_values": {"short": -0.1, "flat": 0.0, "long": 0.3},
        "probabilities": {"short": 0.25, "flat": 0.3, "long": 0.45},
        "reference_price": 171.2,
        "window": {"first_timestamp": "2023-12-01", "last_timestamp": "2024-03-12", "bars": 60},
        "market": {"last_close": 171.2, "return_1d": 0.01, "return_20d": 0.04,
                   "realised_volatility_20d": 0.22, "trend_slope_20d": 0.3},
        "model_dir": str(tmp_path / "bundle"),
    }
    signal = {"schema_version": 1, "symbol": "AAPL", "action": "BUY", "confidence": 0.62,
              "target_position": 0.5, "review_status": "approved", "reviewer_model": "rules",
              "token_usage": {"prompt": 0, "completion": 0}}
    evidence = b'{"backtest":{"test_total_return":0.12},"symbol":"AAPL"}'
    trace = {"kind": "llm", "entries": [{"role": "analyst", "content": "ok"}], "chain": {"head": "ef" * 32}}
    for _ in range(2):
        log_inference(run.run_id, inference, tracking_uri=tracking_uri)
        log_review(run.run_id, evidence, signal, trace, tracking_uri=tracking_uri)
    client = client_for(tracking_uri)
    data = client.get_run(run.run_id).data
    assert data.tags["signal.action"] == "BUY"
    assert data.tags["tmpipe.trace_head_sha256"] == "ef" * 32  # the copy `review verify --mlflow-run` checks
    assert data.tags["inference.action"] == "long"
    assert data.metrics["confidence"] == 0.62
    assert data.metrics["inference_probabilities_long"] == 0.45
    assert len(client.get_metric_history(run.run_id, "confidence")) == 1
    for name, payload in (("signal", signal), ("trace", trace)):
        local = client.download_artifacts(run.run_id, f"review/{name}.json", str(tmp_path))
        assert json.loads(Path(local).read_text()) == payload
    local = client.download_artifacts(run.run_id, "review/evidence.json", str(tmp_path))
    assert Path(local).read_bytes() == evidence  # byte for byte: the trace references its sha256
    assert "inference/result.json" in _artifact_paths(client, run.run_id)
