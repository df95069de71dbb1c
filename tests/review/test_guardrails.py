"""Guardrails on model output, exercised with scripted (replay) answers and a slow loopback endpoint."""

from __future__ import annotations

import json

import pytest

from tmpipe.review import review_signal, verify_trace
from tmpipe.review.schema_ids import SIGNAL, schema_problems

BUY = {"action": "BUY", "confidence": 0.6, "target_position": 1.0, "stop_loss": 200.0, "take_profit": 225.0,
       "rationale": "Trend and Sharpe support a long.", "risks": ["volatility"], "evidence": {"test_sharpe": 1.25}}
SELL = {**BUY, "action": "SELL", "target_position": -0.5, "stop_loss": 220.0, "take_profit": 195.0,
        "rationale": "Earnings gap risk outweighs the model's long call."}


@pytest.fixture
def replay(tmp_path, review_config, configure):
    def make(answers: list, **changes) -> dict:
        path = tmp_path / "answers.json"
        path.write_text(json.dumps({"responses": answers}))
        return configure(review_config, model_client__provider="replay", model_client__replay_file=str(path), **changes)
    return make


def test_contradiction_with_a_risk_manager_override_is_accepted(evidence, replay):
    config = replay(["Long, p=0.62.", "Checks pass.\nOVERRIDE: earnings on Monday, gap risk too large to be long.",
                     json.dumps(SELL)])
    outcome = review_signal(evidence, config, symbol="AAPL")
    signal = outcome.signal
    assert schema_problems(signal, SIGNAL) == []
    assert (signal["action"], signal["review_status"]) == ("SELL", "approved")
    assert any("override of inferred BUY: earnings on Monday" in risk for risk in signal["risks"])
    assert signal["reviewer_model"] == "replay:answers.json" and outcome.trace["reviewer"]["is_llm"] is False


def test_contradiction_without_override_is_retried_and_the_retry_can_fix_it(evidence, replay):
    config = replay(["Long.", "Checks pass.", json.dumps(SELL),
                     "Long.", "Checks pass.", json.dumps(BUY)], max_retries=1)
    outcome = review_signal(evidence, config, symbol="AAPL")
    assert (outcome.signal["action"], outcome.signal["review_status"]) == ("BUY", "approved")
    trace = outcome.trace
    assert trace["retries"] == 1 and "OVERRIDE" in trace["attempts"][0]["problems"][0]
    guardrails = [e["content"]["accepted"] for e in trace["entries"] if e["kind"] == "guardrail"]
    assert guardrails == [False, True] and verify_trace(trace).ok


def test_policy_limits_hold_whatever_the_model_writes(evidence, replay):
    config = replay(["Long.", "Looks fine to me.", json.dumps(BUY)], thresholds__max_drawdown=0.1)
    signal = review_signal(evidence, config, symbol="AAPL").signal
    assert (signal["action"], signal["review_status"], signal["stop_loss"]) == ("HOLD", "downgraded", None)
    assert "test max drawdown 0.1800 <= 0.1000: FAIL" in signal["rationale"]


@pytest.mark.parametrize("draft, problem", [
    ({**BUY, "stop_loss": 230.0}, "stop_loss < reference < take_profit"),
    ({**BUY, "target_position": -1.0}, "points the wrong way"),
    ({**BUY, "confidence": 1.7}, "1.7 is greater than the maximum of 1"),
    ("I think we should buy.", "no JSON object"),
])
def test_inconsistent_drafts_end_in_fallback_with_the_problem(evidence, replay, draft, problem):
    answer = draft if isinstance(draft, str) else json.dumps(draft)
    outcome = review_signal(evidence, replay(["a", "b", answer], max_retries=0), symbol="AAPL")
    assert outcome.signal["review_status"] == "fallback"
    assert problem in outcome.signal["fallback_cause"]["detail"]
    assert schema_problems(outcome.signal, SIGNAL) == []


def test_exhausted_replay_is_a_model_error_fallback(evidence, replay):
    outcome = review_signal(evidence, replay(["only one answer"]), symbol="AAPL")
    assert outcome.signal["fallback_cause"]["kind"] == "model_error"
    assert outcome.trace["termination_reason"] == "error"


def test_conversation_timeout_stops_a_slow_team(evidence, review_config, configure, endpoint_kit, monkeypatch):
    # The analyst answers at once; the risk manager's reply would take 30 s, far past the
    # team's 3 s budget: the timeout must abort that call, not wait for it.
    monkeypatch.setenv("TMPIPE_TEST_LLM_KEY", "sk-test")
    slow = lambda role, request: endpoint_kit.Reply(content="thinking about it", delay=30 if role == "risk_manager" else 0)
    with endpoint_kit.FakeEndpoint(slow) as endpoint:
        config = configure(review_config, timeout_seconds=3, model_client__provider="openai",
                           model_client__base_url=endpoint.base_url, model_client__api_key_env="TMPIPE_TEST_LLM_KEY",
                           model_client__timeout_seconds=60, model_client__model="local-test-model")
        outcome = review_signal(evidence, config, symbol="AAPL")
    trace = outcome.trace
    assert outcome.signal["fallback_cause"]["kind"] == "timeout"
    assert trace["termination_reason"] == "timeout" and "timeout" in trace["attempts"][0]["terminated_by"]
    assert endpoint.roles()[:2] == ["analyst", "risk_manager"] and "signal_writer" not in endpoint.roles()
    assert trace["timing"]["duration_ms"] < 20000 and verify_trace(trace).ok
