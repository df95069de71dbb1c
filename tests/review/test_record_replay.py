"""Record a review against the loopback server, then replay it with the server stopped."""

from __future__ import annotations

import json

import pytest

from tmpipe.review import build_evidence, review_signal, verify_trace
from tmpipe.review.clients import recording_sha256
from tmpipe.review.schema_ids import SIGNAL, TRACE, schema_problems

KEY = "sk-tmpipe-FAKE-replay-5e2a"
DRAFT = {"action": "BUY", "confidence": 0.6, "target_position": 0.8, "stop_loss": 200.5, "take_profit": 226.0,
         "rationale": "Sharpe 1.25 with drawdown 18% and a rising trend support a long.",
         "risks": ["volatility 24%"], "evidence": {"test_sharpe": 1.25}}
TALK = {"analyst": "Inference long with p=0.62; test Sharpe 1.25.", "risk_manager": "All checks PASS."}


def _comparable_signal(signal: dict) -> dict:
    return {k: v for k, v in signal.items() if k not in ("created_at", "trace_head_sha256", "lineage", "mlflow_run_id")}


def _comparable_entries(trace: dict) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in ("timing", "sha256")} for e in trace["entries"]]


@pytest.fixture
def recorded(endpoint_kit, evidence, review_config, configure, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPIPE_TEST_LLM_KEY", KEY)
    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        config = configure(review_config, model_client__provider="openai", model_client__base_url=endpoint.base_url,
                           model_client__model="local-test-model", model_client__api_key_env="TMPIPE_TEST_LLM_KEY")
        outcome = review_signal(evidence, config, symbol="AAPL")
    path = tmp_path / "llm_recording.json"
    path.write_text(json.dumps(outcome.recording))
    return outcome, path


def test_a_replay_with_the_server_stopped_gives_the_same_signal_and_trace(recorded, engine_result, inference_result,
                                                                         lineage, review_config, configure):
    original, path = recorded
    assert original.signal["review_status"] == "approved" and len(original.recording["calls"]) == 3
    assert KEY not in path.read_text()
    # Another DAG run of the same model on the same data: only run identifiers differ.
    other_run = {**lineage, "dag_run_id": "manual__2024-07-01", "mlflow_run_id": "feed5678"}
    evidence = build_evidence(engine_result, inference_result, symbol="AAPL", lineage=other_run)
    replayed = review_signal(evidence, configure(review_config, model_client__provider="replay",
                                                 model_client__replay_file=str(path)), symbol="AAPL")
    assert schema_problems(replayed.signal, SIGNAL) == [] and schema_problems(replayed.trace, TRACE) == []
    assert verify_trace(replayed.trace).ok
    assert _comparable_signal(replayed.signal) == _comparable_signal(original.signal)
    original_entries, replayed_entries = _comparable_entries(original.trace), _comparable_entries(replayed.trace)
    assert [e["kind"] for e in replayed_entries] == [e["kind"] for e in original_entries]
    for before, after in zip(original_entries, replayed_entries):
        if before["kind"] == "model_call":  # the prompts carry the evidence, whose run ids differ
            before, after = (dict(e, content={k: v for k, v in e["content"].items() if k != "prompts"}) for e in (before, after))
        if before["source"] == "user":
            continue
        assert after == before
    digest = recording_sha256(original.recording)
    assert original.trace["llm_recording"] == {"sha256": digest, "calls": 3, "replayed": False}
    assert replayed.trace["llm_recording"] == {"sha256": digest, "calls": 3, "replayed": True}


def test_a_request_with_no_recording_fails_the_review_clearly(recorded, evidence, review_config, configure):
    _, path = recorded
    changed = {**evidence, "market": {**evidence["market"], "return_1d": 0.05}}
    outcome = review_signal(changed, configure(review_config, model_client__provider="replay",
                                               model_client__replay_file=str(path)), symbol="AAPL")
    cause = outcome.signal["fallback_cause"]
    assert outcome.signal["review_status"] == "fallback" and cause["kind"] == "replay_missing"
    assert "no recorded answer for analyst's request" in cause["detail"] and "never calls an endpoint" in cause["detail"]
