"""`tmpipe run --replay-llm`: a DAG run reviewed by the loopback server, replayed with the server stopped."""

from __future__ import annotations

import json

import pytest

from ..pipeline.conftest import mlflow_runs, run_tmpipe, spec_text

pytestmark = pytest.mark.slow

KEY = "sk-tmpipe-FAKE-replay-run-91c0"
DRAFT = {"action": "HOLD", "confidence": 0.6, "target_position": 0.0, "stop_loss": None, "take_profit": None,
         "rationale": "Mixed evidence; stay flat.", "risks": ["regime change"], "evidence": {"test_sharpe": 0.1}}
TALK = {"analyst": "The inference and the backtest disagree.", "risk_manager": "Checks noted."}


def _review(client, run) -> tuple[dict, dict]:
    def read(path):
        return json.loads(open(client.download_artifacts(run.info.run_id, path)).read())
    return read("review/signal.json"), read("review/trace.json")


def test_a_replayed_run_gives_the_same_signal_and_trace_messages(endpoint_kit, tmp_path, home):
    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        review = {"model_client": {"provider": "openai", "base_url": endpoint.base_url, "model": "local-test-model",
                                   "api_key_env": "TMPIPE_TEST_LLM_KEY",
                                   "prices": {"local-test-model": {"prompt_per_1m": 2.0, "completion_per_1m": 8.0}}}}
        spec = tmp_path / "spec.yaml"
        spec.write_text(spec_text(extra_defaults={"review": review}))
        code, first = run_tmpipe(home, "--spec", str(spec), "--symbols", "AAA", "--logical-date", "2024-06-03",
                                 env={"TMPIPE_TEST_LLM_KEY": KEY})
        calls = len(endpoint.requests)
    assert code == 0, first
    assert calls == 3
    (row,) = first["symbols"]
    assert row["review_cost_usd"] > 0 and first["review_cost_usd"] == row["review_cost_usd"]
    code, second = run_tmpipe(home, "--spec", str(spec), "--symbols", "AAA", "--logical-date", "2024-06-04",
                              "--replay-llm", first["dag_run_id"], env={"TMPIPE_TEST_LLM_KEY": KEY})
    assert code == 0, second

    client, runs = mlflow_runs(home, first["tracking_uri"])
    by_run = {r.data.tags["airflow.dag_run_id"]: r for r in runs if "airflow.dag_run_id" in r.data.tags}
    (signal_a, trace_a), (signal_b, trace_b) = (_review(client, by_run[out["dag_run_id"]]) for out in (first, second))
    varying = ("created_at", "trace_head_sha256", "lineage", "mlflow_run_id", "mlflow_run_url", "model_version")
    assert {k: v for k, v in signal_a.items() if k not in varying} == {k: v for k, v in signal_b.items() if k not in varying}
    assert signal_b["review_status"] == "approved"
    messages = lambda trace: [(e["source"], e["type"], e["content"]) for e in trace["entries"]
                              if e["kind"] == "message" and e["source"] != "user"]
    assert messages(trace_b) == messages(trace_a) and len(messages(trace_a)) == 3
    assert trace_b["llm_recording"] == {**trace_a["llm_recording"], "replayed": True}
    assert trace_b["cost"] == trace_a["cost"] and trace_a["cost"]["usd"] == row["review_cost_usd"]
    assert by_run[first["dag_run_id"]].data.metrics["review_cost_usd"] == pytest.approx(row["review_cost_usd"])
    recording = client.download_artifacts(by_run[first["dag_run_id"]].info.run_id, "review/llm_recording.json")
    assert KEY not in open(recording).read()


def test_replaying_a_run_without_a_recording_fails_the_review_clearly(tmp_path, home):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text())
    code, out = run_tmpipe(home, "--spec", str(spec), "--symbols", "AAA", "--replay-llm", "manual__1999-01-01")
    assert code == 1
    (row,) = out["symbols"]
    assert "nothing to replay: DAG run manual__1999-01-01" in row["error"]
