"""Structured output, Retry-After and quiet failures against a loopback OpenAI-compatible server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tmpipe.review import review_signal, verify_trace
from tmpipe.review.schema_ids import SIGNAL, TRACE, schema_problems

KEY = "sk-tmpipe-FAKE-structured-0b1d"
DRAFT = {"action": "BUY", "confidence": 0.6, "target_position": 0.8, "stop_loss": 200.5, "take_profit": 226.0,
         "rationale": "Sharpe 1.25 with drawdown 18% and a rising 20-day trend support a long.",
         "risks": ["volatility 24%"], "evidence": {"test_sharpe": 1.25, "test_max_drawdown": 0.18}}
TALK = {"analyst": "Inference long with p=0.62; test Sharpe 1.25, drawdown 18%.",
        "risk_manager": "Drawdown 0.18 <= 0.35 PASS; Sharpe 1.25 >= 0 PASS; confidence 0.62 >= 0.55 PASS."}


@pytest.fixture
def config(review_config, configure, monkeypatch):
    monkeypatch.setenv("TMPIPE_TEST_LLM_KEY", KEY)

    def make(endpoint, **changes) -> dict:
        base = {"model_client__provider": "openai", "model_client__base_url": endpoint.base_url,
                "model_client__model": "local-test-model", "model_client__api_key_env": "TMPIPE_TEST_LLM_KEY"}
        return configure(review_config, **{**base, **changes})
    return make


def _valid(outcome) -> None:
    assert schema_problems(outcome.signal, SIGNAL) == [] and schema_problems(outcome.trace, TRACE) == []
    assert verify_trace(outcome.trace).ok
    assert KEY not in json.dumps(outcome.trace) + json.dumps(outcome.signal)


def test_structured_answer_becomes_an_approved_signal(endpoint_kit, evidence, config):
    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        outcome = review_signal(evidence, config(endpoint), symbol="AAPL")
    _valid(outcome)
    assert (outcome.signal["action"], outcome.signal["review_status"]) == ("BUY", "approved")
    formats = {r["role"]: (r["body"].get("response_format") or {}).get("type") for r in endpoint.requests}
    assert formats == {"analyst": None, "risk_manager": None, "signal_writer": "json_schema"}
    writer = [e for e in outcome.trace["entries"] if e["kind"] == "message" and e["source"] == "signal_writer"]
    assert writer[0]["type"] == "StructuredMessage[SignalDraft]" and json.loads(writer[0]["content"]) == DRAFT
    assert outcome.trace["model_client"]["structured_output"] == "json_schema"


def test_structured_answer_the_policy_fails_is_downgraded(endpoint_kit, evidence, config):
    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        outcome = review_signal(evidence, config(endpoint, thresholds__min_sharpe=5.0), symbol="AAPL")
    _valid(outcome)
    assert (outcome.signal["action"], outcome.signal["review_status"]) == ("HOLD", "downgraded")


def test_structured_answer_outside_the_draft_model_is_retried_with_the_problems(endpoint_kit, evidence, config):
    bad = {**DRAFT, "action": "STRONG_BUY"}
    answers = iter([bad, DRAFT])

    def behaviour(role, request):
        return endpoint_kit.Reply(content=json.dumps(next(answers)) if role == "signal_writer" else TALK[role])

    with endpoint_kit.FakeEndpoint(behaviour) as endpoint:
        outcome = review_signal(evidence, config(endpoint, max_retries=1), symbol="AAPL")
    _valid(outcome)
    assert outcome.signal["review_status"] == "approved" and outcome.trace["retries"] == 1
    assert endpoint.requests[2]["body"]["response_format"]["type"] == "json_schema"
    assert "STRONG_BUY" in " ".join(outcome.trace["attempts"][0]["problems"])
    assert "rejected by the guardrails" in endpoint.requests[3]["body"]["messages"][-1]["content"]


def test_text_path_for_a_provider_without_structured_output(endpoint_kit, evidence, config):
    fenced = {**TALK, "signal_writer": "```json\n" + json.dumps(DRAFT) + "\n```"}
    with endpoint_kit.FakeEndpoint(lambda role, request: endpoint_kit.Reply(content=fenced[role])) as endpoint:
        outcome = review_signal(evidence, config(endpoint, model_client__structured_output="text"), symbol="AAPL")
    _valid(outcome)
    assert (outcome.signal["action"], outcome.signal["review_status"]) == ("BUY", "approved")
    assert all("response_format" not in r["body"] for r in endpoint.requests)


def test_prose_on_the_text_path_falls_back_as_before(endpoint_kit, evidence, config):
    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        outcome = review_signal(evidence, config(endpoint, model_client__structured_output="text", max_retries=0),
                                symbol="AAPL")
    assert outcome.signal["review_status"] == "fallback"
    assert "no JSON object" in outcome.signal["fallback_cause"]["detail"]


def test_429_with_retry_after_is_retried_and_succeeds(endpoint_kit, evidence, config):
    answer = endpoint_kit.structured_or_prose(DRAFT, TALK)
    limited = []

    def behaviour(role, request):
        if role == "risk_manager" and not limited:
            limited.append(role)
            return endpoint_kit.Reply(status=429, error="Rate limit reached", headers={"Retry-After": "0"})
        return answer(role, request)

    with endpoint_kit.FakeEndpoint(behaviour) as endpoint:
        outcome = review_signal(evidence, config(endpoint), symbol="AAPL")
    _valid(outcome)
    assert outcome.signal["review_status"] == "approved"
    assert endpoint.roles() == ["analyst", "risk_manager", "risk_manager", "signal_writer"]
    calls = [e["content"] for e in outcome.trace["entries"] if e["kind"] == "model_call"]
    assert calls[1]["rate_limited"] == [{"http_status": 429, "retry_after_seconds": 0.0}] and calls[1]["error"] is None


SCRIPT = """
import json, sys
from tmpipe.review import review_signal
from tmpipe.config.sections import ReviewConfig
config = ReviewConfig.from_values({"model_client": {"provider": "openai", "base_url": sys.argv[2], "model": "m",
                                         "api_key_env": "TMPIPE_TEST_LLM_KEY"}})
outcome = review_signal(json.load(open(sys.argv[1])), config, symbol="AAPL")
print(outcome.signal["fallback_cause"]["kind"])
"""


@pytest.mark.parametrize("kind", ["rate_limited", "network"])
def test_failed_calls_print_no_autogen_traceback(endpoint_kit, evidence, tmp_path: Path, kind):
    (tmp_path / "evidence.json").write_text(json.dumps(evidence))
    limited = lambda role, request: endpoint_kit.Reply(status=429, error="Rate limit reached",
                                                               headers={"Retry-After": "0"})
    with endpoint_kit.FakeEndpoint(limited) as endpoint:
        url = endpoint.base_url
        if kind == "rate_limited":
            done = _run_script(tmp_path, url)
    if kind == "network":
        done = _run_script(tmp_path, url)  # the server is closed: connection refused
    assert done.returncode == 0 and done.stdout.strip() == kind
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"AAPL: review fell back to HOLD ({kind}): " +
                                                done.stderr.split(f"({kind}): ", 1)[1].strip()]


def _run_script(tmp_path: Path, url: str) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "TMPIPE_TEST_LLM_KEY": KEY}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "evidence.json"), url],
                          capture_output=True, text=True, env=env, timeout=120)
