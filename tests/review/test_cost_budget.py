"""Cost from the spec's price table, and budgets that hand the review to the rules model."""

from __future__ import annotations

import pytest

from tmpipe.review import review_signal
from tmpipe.review.schema_ids import TRACE, schema_problems

KEY = "sk-tmpipe-FAKE-cost-33d1"
DRAFT = {"action": "BUY", "confidence": 0.6, "target_position": 0.8, "stop_loss": 200.5, "take_profit": 226.0,
         "rationale": "Sharpe 1.25 supports a long.", "risks": ["volatility 24%"], "evidence": {"test_sharpe": 1.25}}
TALK = {"analyst": "Inference long with p=0.62; test Sharpe 1.25.", "risk_manager": "All checks PASS."}
PRICE = {"prompt_per_1m": 2.0, "completion_per_1m": 8.0}


@pytest.fixture
def config(review_config, configure, monkeypatch):
    monkeypatch.setenv("TMPIPE_TEST_LLM_KEY", KEY)

    def make(endpoint, **changes):
        base = {"model_client__provider": "openai", "model_client__base_url": endpoint.base_url,
                "model_client__model": "local-test-model", "model_client__api_key_env": "TMPIPE_TEST_LLM_KEY",
                "model_client__prices": {"local-test-model": PRICE}}
        return configure(review_config, **{**base, **changes})
    return make


def _calls(trace):
    return [e for e in trace["entries"] if e["kind"] == "model_call"]


def test_each_call_and_the_review_are_priced(endpoint_kit, evidence, config):
    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        outcome = review_signal(evidence, config(endpoint), symbol="AAPL")
    calls = _calls(outcome.trace)
    expected = [(c["token_usage"]["prompt"] * 2.0 + c["token_usage"]["completion"] * 8.0) / 1e6 for c in calls]
    assert [c["content"]["cost_usd"] for c in calls] == pytest.approx(expected) and all(expected)
    cost = outcome.trace["cost"]
    assert cost["usd"] == pytest.approx(sum(expected)) and cost["calls"] == 3 and cost["unpriced_calls"] == 0
    assert cost["budget_exhausted"] is None and schema_problems(outcome.trace, TRACE) == []


def test_a_model_without_a_price_has_an_unknown_cost(endpoint_kit, evidence, config):
    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        outcome = review_signal(evidence, config(endpoint, model_client__prices={}), symbol="AAPL")
    assert outcome.trace["cost"]["usd"] is None and outcome.trace["cost"]["unpriced_calls"] == 3


def test_the_symbol_budget_stops_the_llm_and_the_rules_model_reviews(endpoint_kit, evidence, config):
    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        outcome = review_signal(evidence, config(endpoint, budget__per_symbol_usd=1e-9), symbol="AAPL")
    assert endpoint.roles() == ["analyst"]  # at most one call past the limit
    signal, cost = outcome.signal, outcome.trace["cost"]
    assert signal["reviewer_model"].startswith("rules") and signal["review_status"] == "approved"
    assert signal["fallback_cause"] is None
    assert "review.budget.per_symbol_usd 1e-09 reached" in cost["budget_exhausted"]["reason"]
    assert cost["budget_exhausted"]["fallback"] == "rules" and cost["usd"] > 0
    assert any("reviewed by the rules model" in risk for risk in signal["risks"])
    assert schema_problems(outcome.trace, TRACE) == []


def test_a_dag_run_budget_spent_by_other_symbols_means_no_llm_call(endpoint_kit, evidence, config):
    published = []
    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        outcome = review_signal(evidence, config(endpoint, budget__per_dag_run_usd=0.01), symbol="AAPL",
                                spent_elsewhere=lambda: 0.02, publish_spend=published.append)
    assert endpoint.requests == [] and published == []
    assert "the DAG run spent 0.020000 USD (0.020000 by its other symbols)" in outcome.trace["cost"]["budget_exhausted"]["reason"]
    assert outcome.signal["reviewer_model"].startswith("rules")


def test_spend_is_published_after_each_call_for_the_other_symbols(endpoint_kit, evidence, config):
    published = []
    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        outcome = review_signal(evidence, config(endpoint, budget__per_dag_run_usd=10.0), symbol="AAPL",
                                spent_elsewhere=lambda: 0.0, publish_spend=published.append)
    assert len(published) == 3 and published == sorted(published)
    assert published[-1] == pytest.approx(outcome.trace["cost"]["usd"])


def test_the_recording_keeps_the_llm_calls_made_before_the_budget_stopped_it(endpoint_kit, evidence, config):
    import json

    from tmpipe.review.clients import recording_sha256

    with endpoint_kit.FakeEndpoint(endpoint_kit.structured_or_prose(DRAFT, TALK)) as endpoint:
        outcome = review_signal(evidence, config(endpoint, budget__per_symbol_usd=1e-9), symbol="AAPL")
    recording = outcome.recording
    assert recording["reviewer"]["provider"] == "rules" and recording["calls"]  # the rules model's review
    stopped = recording["before_budget"]
    assert "review.budget.per_symbol_usd 1e-09 reached" in stopped["reason"]
    assert stopped["reviewer"]["provider"] == "openai" and stopped["structured_output"] == "json_schema"
    [llm_call] = stopped["calls"]  # the one call answered before the stop
    assert llm_call["agent"] == "analyst" and llm_call["request"]["model"] == "local-test-model"
    assert llm_call["response"]["content"] == TALK["analyst"] and llm_call["response"]["cost_usd"] > 0
    assert endpoint.roles() == ["analyst"]
    assert KEY not in json.dumps(recording)
    summary = outcome.trace["llm_recording"]
    assert summary["calls"] == len(recording["calls"]) + 1 and summary["sha256"] == recording_sha256(recording)
