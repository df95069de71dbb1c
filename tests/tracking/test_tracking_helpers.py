"""Pure helpers: naming, filter quoting, URIs, params and secrets, the promotion gate."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from tmpipe.config.sections import PromotionConfig
from tmpipe.errors import TrackingError
from tmpipe.tracking.run_identity import (
    default_artifact_location,
    embedded_tracking_uri,
    quote_filter_value,
    run_url,
    sqlite_path,
    tags_filter,
)
from tmpipe.tracking.params import loggable_params, provenance_document
from tmpipe.tracking.registry import evaluate_gate


def test_run_name_has_symbol_and_dag_run_timestamp(context_factory):
    assert context_factory().run_name() == "AAPL-20240501T123000"
    stamped = context_factory(run_timestamp=datetime(2025, 1, 2, 3, 4, 5))
    assert stamped.run_name() == "AAPL-20250102T030405"
    custom = context_factory(symbol="BTC-USD", dag_run_id="my_custom_run")
    assert custom.run_name() == "BTC-USD-my_custom_run"


def test_all_tags_carry_airflow_identity(context_factory):
    tags = context_factory(try_number=3, task_url=None).all_tags()
    assert tags["airflow.try_number"] == "3"
    assert tags["airflow.map_index"] == "0"
    assert "airflow.task_url" not in tags
    assert {"airflow.dag_id", "airflow.dag_run_id", "symbol", "mode", "engine", "spec_sha256",
            "tmpipe.version"} <= set(tags)


def test_filter_values_are_quoted_and_keys_backquoted():
    assert quote_filter_value("manual__2024") == "'manual__2024'"
    assert quote_filter_value("it's") == '"it\'s"'
    with pytest.raises(TrackingError):
        quote_filter_value("""both ' and " """)
    assert tags_filter({"airflow.dag_id": "d", "symbol": "^GSPC"}) == (
        "tags.`airflow.dag_id` = 'd' AND tags.`symbol` = '^GSPC'"
    )


def test_embedded_uri_and_artifact_root(tmp_path):
    uri = embedded_tracking_uri(tmp_path / "home")
    assert uri == f"sqlite:///{tmp_path}/home/mlflow/mlflow.db"
    assert (tmp_path / "home" / "mlflow").is_dir()
    assert sqlite_path(uri) == tmp_path / "home" / "mlflow" / "mlflow.db"
    assert default_artifact_location(uri, "my exp") == str(
        tmp_path / "home" / "mlflow" / "artifacts" / "my_exp"
    )
    assert default_artifact_location("http://127.0.0.1:5000", "x") is None


def test_run_url_only_for_http_servers():
    assert run_url("http://127.0.0.1:5000/", "3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc"
    assert run_url("sqlite:////tmp/x.db", "3", "abc") is None
    assert run_url("file:///tmp/mlruns", "3", "abc") is None


def test_run_url_leaves_credentials_and_query_out():
    link = run_url("https://user:s3cret@mlflow.example:5000/base/?token=t0k", "3", "abc")
    assert link == "https://mlflow.example:5000/base/#/experiments/3/runs/abc"


def test_params_are_flat_truncated_and_secret_free():
    config = {
        "review": {"model_client": {"api_key": "sk-live-123", "base_url": "http://127.0.0.1:1"},
                   "Access_Token": "t0k", "db_password": "pw", "client_secret": "s"},
        "trademaster": {"epochs": 3, "layers": [64, 64], "note": "x" * 7000, "empty": {}},
    }
    params = loggable_params(config)
    assert params == {
        "review.model_client.base_url": "http://127.0.0.1:1",
        "trademaster.epochs": "3",
        "trademaster.layers": "[64, 64]",
        "trademaster.note": "x" * 6000,
        "trademaster.empty": "{}",
    }
    document = provenance_document(config, {"trademaster": "spec defaults", "trademaster.epochs": "dag_run.conf"})
    keys = document["keys"]
    assert keys["trademaster.epochs"] == {"value": 3, "set_by": "dag_run.conf"}
    assert keys["trademaster.layers"]["set_by"] == "spec defaults"
    assert keys["review.model_client.api_key"]["value"] == "[REDACTED]"
    assert "sk-live-123" not in repr(document)


@pytest.mark.parametrize(
    ("test_return", "bh_return", "drawdown", "cfg", "passed"),
    [
        (0.10, 0.05, 0.20, {}, True),
        (0.04, 0.05, 0.20, {}, False),  # does not beat buy and hold
        (0.04, 0.05, 0.20, {"require_beat_buy_and_hold": False}, True),
        (0.10, 0.05, 0.60, {"max_drawdown": 0.5}, False),  # drawdown over the limit
        (0.10, 0.05, 0.50, {"max_drawdown": 0.5}, True),  # limit is inclusive
        (math.nan, 0.05, 0.20, {}, False),  # a missing number never passes
    ],
)
def test_gate(engine_result_factory, test_return, bh_return, drawdown, cfg, passed):
    result = engine_result_factory(test_return=test_return, bh_return=bh_return, test_drawdown=drawdown)
    gate = evaluate_gate(result, PromotionConfig.from_values(cfg))
    assert gate["passed"] is passed
    assert gate["checks"]["max_drawdown"]["test_max_drawdown"] == drawdown
    assert set(gate["checks"]) == {"beat_buy_and_hold", "max_drawdown", "skill", "beat_baselines"}


@pytest.mark.parametrize(
    ("p_value", "sharpe", "cfg", "reasons"),
    [
        (0.01, 1.1, {}, []),
        (0.20, 1.1, {}, ["no demonstrated skill: timing p-value 0.2 >= 0.05"]),
        (0.20, 1.1, {"skill_level": 0.25}, []),
        (0.20, 1.1, {"require_skill": False}, []),
        (0.01, 0.5, {}, ["did not beat buy_and_hold after costs: Sharpe 0.5 <= 0.6"]),
        (0.01, -0.1, {}, ["did not beat buy_and_hold after costs: Sharpe -0.1 <= 0.6",
                          "did not beat flat after costs: Sharpe -0.1 <= 0"]),
        (0.01, 0.5, {"beat_baselines": ["flat"]}, []),
        (0.01, 0.5, {"beat_baselines": ["ma_crossover"]}, []),
    ],
)
def test_gate_requires_skill_and_beating_the_named_baselines(engine_result_factory, p_value, sharpe, cfg, reasons):
    result = engine_result_factory(skill_p_value=p_value, sharpe=sharpe, bh_sharpe=0.6)
    gate = evaluate_gate(result, PromotionConfig.from_values(cfg))
    assert gate["reasons"] == reasons and gate["passed"] is (not reasons)


def test_gate_fails_a_result_without_a_skill_test(engine_result_factory):
    result = engine_result_factory()
    for key in ("skill", "report", "baselines"):
        del result[key]
    assert evaluate_gate(result, PromotionConfig.from_values({}))["reasons"] == [
        "no out-of-sample skill test in the result",
        "no out-of-sample report in the result to compare with the baselines"]


def test_passwords_inside_urls_are_masked():
    config = {"mlflow": {"tracking_uri": "https://ci:s3cr3t@127.0.0.1:5000"}, "data": {"path": "/a:b@c"}}
    assert loggable_params(config)["mlflow.tracking_uri"] == "https://ci:***@127.0.0.1:5000"
    assert loggable_params(config)["data.path"] == "/a:b@c"
    assert "s3cr3t" not in repr(provenance_document(config, {}))
