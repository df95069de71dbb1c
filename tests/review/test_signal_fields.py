"""Every signal says which bar it is for, until when, on which data, from which model and run."""

import pytest

from tmpipe.review import build_evidence, review_signal
from tmpipe.review.policy import horizon_end
from tmpipe.review.schema_ids import SIGNAL, schema_problems

RUN_LINEAGE = {"model_version": "models:/tmpipe.AAPL.deepscalper/3",
               "mlflow_run_url": "http://127.0.0.1:5000/#/experiments/7/runs/0123abcd"}


def bar_fields(signal):
    return {key: signal[key] for key in ("as_of", "horizon_end", "data_sha256", "model_version", "mlflow_run_id", "mlflow_run_url")}


def test_approved_signal_carries_its_bar_horizon_data_model_and_run(engine_result, inference_result, lineage, review_config):
    evidence = build_evidence(engine_result, inference_result, symbol="AAPL", lineage={**lineage, **RUN_LINEAGE})
    signal = review_signal(evidence, review_config, symbol="AAPL").signal
    assert signal["review_status"] == "approved" and schema_problems(signal, SIGNAL) == []
    assert bar_fields(signal) == {
        "as_of": "2024-06-28",  # a Friday: five weekday bars later is the next Friday
        "horizon_end": "2024-07-05",
        "data_sha256": "ab" * 32,
        "model_version": "models:/tmpipe.AAPL.deepscalper/3",
        "mlflow_run_id": "0123abcd",
        "mlflow_run_url": RUN_LINEAGE["mlflow_run_url"],
    }
    assert set(signal["lineage"]) == {"dag_id", "dag_run_id", "mlflow_run_id", "mlflow_experiment_id", "model_uri", "data_sha256"}


def test_fallback_signal_carries_them_too(engine_result, inference_result, lineage, review_config, configure, monkeypatch):
    monkeypatch.delenv("TMPIPE_TEST_NO_SUCH_KEY", raising=False)
    evidence = build_evidence(engine_result, inference_result, symbol="AAPL", lineage={**lineage, **RUN_LINEAGE})
    config = configure(review_config, horizon="1w", model_client__provider="openai", model_client__model="m",
                       model_client__base_url="http://127.0.0.1:9", model_client__api_key_env="TMPIPE_TEST_NO_SUCH_KEY")
    signal = review_signal(evidence, config, symbol="AAPL").signal
    assert signal["review_status"] == "fallback" and schema_problems(signal, SIGNAL) == []
    assert (signal["as_of"], signal["horizon_end"], signal["model_version"]) == ("2024-06-28", "2024-07-05", RUN_LINEAGE["model_version"])


def test_local_store_has_no_run_link_and_an_unregistered_model_is_named_by_its_uri(evidence, review_config):
    signal = review_signal(evidence, review_config, symbol="AAPL").signal  # lineage without version or link
    assert signal["model_version"] == "models:/tmpipe.AAPL.deepscalper/3" == signal["lineage"]["model_uri"]
    assert signal["mlflow_run_url"] is None and signal["mlflow_run_id"] == "0123abcd"


def test_seven_day_data_counts_every_day(engine_result, inference_result, lineage, review_config):
    for split in engine_result["metrics"].values():
        split["bars_per_year"] = 365
    evidence = build_evidence(engine_result, inference_result, symbol="AAPL", lineage=lineage)
    assert review_signal(evidence, review_config, symbol="AAPL").signal["horizon_end"] == "2024-07-03"


@pytest.mark.parametrize("as_of, horizon, bars_per_year, end", [
    ("2024-06-28", "5d", 252, "2024-07-05"),  # weekday bars skip the weekend
    ("2024-06-28", "2w", 252, "2024-07-12"),
    ("2024-06-28", "5d", 365, "2024-07-03"),  # crypto: every day is a bar
    ("2024-06-28", "1w", 365.25, "2024-07-05"),
    ("2024-06-28T15:30:00", "2d", 252 * 78, "2024-07-02T15:30:00"),  # 5-minute bars: two sessions later
    ("2024-06-28T23:00:00", "1d", 365 * 24, "2024-06-29T23:00:00"),
    ("2024-06-28T15:30:00", "30m", 252 * 78, "2024-06-28T16:00:00"),  # clock time
    ("2024-06-28", "4h", 252, "2024-06-28T04:00:00"),
    ("2024-06-28T15:30:00.250", "1d", 252, "2024-07-01T15:30:00.250"),
    (None, "5d", 252, None),
    ("2024-06-28", "5d", None, None),
])
def test_horizon_end_on_the_data_calendar(as_of, horizon, bars_per_year, end):
    assert horizon_end(as_of, horizon, bars_per_year) == end


def test_schema_requires_the_fields():
    from tmpipe.review.schema_ids import load_schema

    required = set(load_schema(SIGNAL)["required"])
    assert {"as_of", "horizon_end", "data_sha256", "model_version", "mlflow_run_id", "mlflow_run_url"} <= required
