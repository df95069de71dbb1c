"""The offline rules model: deterministic, policy-driven, honest about what it is."""

from __future__ import annotations

import json

import pytest

from tmpipe.review import build_evidence, review_signal, verify_trace
from tmpipe.review.schema_ids import SIGNAL, TRACE, schema_problems
from tmpipe.review.trace import without_timing


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


def test_same_evidence_gives_the_same_signal_and_trace(evidence, review_config):
    first = review_signal(evidence, review_config, symbol="AAPL")
    second = review_signal(evidence, review_config, symbol="AAPL")
    assert canonical(without_timing(first.signal)) == canonical(without_timing(second.signal))
    assert canonical(without_timing(first.trace)) == canonical(without_timing(second.trace))
    assert first.trace["chain"]["head"] == second.trace["chain"]["head"]
    # Timing is kept, just not part of what must match.
    assert first.trace["timing"]["started_at"] and first.trace["entries"][1]["timing"]["duration_ms"] is not None


def test_rules_review_approves_a_signal_that_passes_every_threshold(lineage, evidence, review_config):
    outcome = review_signal(evidence, review_config, symbol="AAPL")
    signal, trace = outcome.signal, outcome.trace
    assert schema_problems(signal, SIGNAL) == [] and schema_problems(trace, TRACE) == []
    assert (signal["action"], signal["review_status"], signal["confidence"]) == ("BUY", "approved", 0.62)
    assert signal["stop_loss"] < signal["reference_price"] == 210.62 < signal["take_profit"]
    assert signal["lineage"] == {**lineage, "data_sha256": "ab" * 32}
    assert "rules model" in trace["reviewer"]["label"] and trace["reviewer"]["is_llm"] is False
    assert "LLM" not in signal["reviewer_model"] and signal["reviewer_model"].startswith("rules-model")
    messages = [e for e in trace["entries"] if e["kind"] == "message"]
    assert [m["source"] for m in messages] == ["user", "analyst", "risk_manager", "signal_writer"]
    assert "Sharpe 1.2500" in messages[1]["content"] and "0.1800 <= 0.3500: PASS" in messages[2]["content"]
    assert trace["termination_reason"] == "signal_written" and trace["retries"] == 0
    assert verify_trace(trace).ok


@pytest.mark.parametrize("changes, failed", [
    ({"thresholds__max_drawdown": 0.10}, "test max drawdown 0.1800 <= 0.1000: FAIL"),
    ({"thresholds__min_sharpe": 2.0}, "test Sharpe 1.2500 >= 2.0000: FAIL"),
    ({"thresholds__min_confidence": 0.7}, "confidence 0.6200 >= 0.7000: FAIL"),
    ({"thresholds__max_skill_p_value": 0.005},
     "out-of-sample timing-skill p-value 0.0100 < 0.0050: FAIL (no demonstrated skill)"),
])
def test_thresholds_downgrade_to_hold_with_the_reason(configure, evidence, review_config, changes, failed):
    outcome = review_signal(evidence, configure(review_config, **changes), symbol="AAPL")
    signal = outcome.signal
    assert (signal["action"], signal["review_status"], signal["target_position"]) == ("HOLD", "downgraded", 0.0)
    assert signal["stop_loss"] is None and signal["take_profit"] is None
    assert failed in signal["rationale"]
    risk = next(e for e in outcome.trace["entries"] if e["kind"] == "message" and e["source"] == "risk_manager")
    assert f"DOWNGRADE: BUY -> HOLD because {failed}" in risk["content"]


def test_short_inference_becomes_sell_with_levels_above_and_below(lineage, engine_result, inference_result, review_config):
    inference = {**inference_result, "action": "short", "target_position": -0.5,
                 "probabilities": {"short": 0.7, "flat": 0.2, "long": 0.1}}
    evidence = build_evidence(engine_result, inference, symbol="AAPL", lineage=lineage)
    signal = review_signal(evidence, review_config, symbol="AAPL").signal
    assert (signal["action"], signal["target_position"], signal["confidence"]) == ("SELL", -0.5, 0.7)
    assert signal["take_profit"] < signal["reference_price"] < signal["stop_loss"]


def test_flat_inference_is_an_approved_hold(lineage, engine_result, inference_result, review_config):
    inference = {**inference_result, "action": "flat", "target_position": 0.0,
                 "probabilities": {"short": 0.2, "flat": 0.6, "long": 0.2}}
    evidence = build_evidence(engine_result, inference, symbol="AAPL", lineage=lineage)
    signal = review_signal(evidence, review_config, symbol="AAPL").signal
    assert (signal["action"], signal["review_status"], signal["confidence"]) == ("HOLD", "approved", 0.6)


def test_selector_team_reaches_the_same_signal(configure, evidence, review_config):
    round_robin = review_signal(evidence, review_config, symbol="AAPL")
    selector = review_signal(evidence, configure(review_config, team="selector"), symbol="AAPL")
    decision = lambda signal: without_timing({k: v for k, v in signal.items() if k != "trace_head_sha256"})
    assert decision(selector.signal) == decision(round_robin.signal)  # the traces (and so heads) record the team
    assert selector.trace["team"]["type"] == "selector" and verify_trace(selector.trace).ok


def test_custom_prompt_template_is_filled_and_recorded(configure, evidence, review_config):
    agents = [{"name": "quant", "role": "analyst", "system_prompt": 'Analyse {symbol}; limit {max_drawdown}; keep {"a": 1}'},
              {"name": "risk", "role": "risk_manager", "system_prompt": None},
              {"name": "writer", "role": "signal_writer", "system_prompt": None}]
    trace = review_signal(evidence, configure(review_config, agents=agents), symbol="AAPL").trace
    assert trace["team"]["agents"][0]["system_prompt"] == 'Analyse AAPL; limit 0.35; keep {"a": 1}'
    assert "OUTPUT CONTRACT" in trace["team"]["agents"][2]["system_prompt"]
    call = next(e for e in trace["entries"] if e["kind"] == "model_call")
    assert call["content"]["prompts"][0]["content"] == 'Analyse AAPL; limit 0.35; keep {"a": 1}'


def test_token_budget_stops_the_conversation(configure, evidence, review_config):
    outcome = review_signal(evidence, configure(review_config, token_budget=100), symbol="AAPL")
    signal, trace = outcome.signal, outcome.trace
    assert (signal["action"], signal["review_status"]) == ("HOLD", "fallback")
    assert signal["fallback_cause"]["kind"] == "token_budget"
    assert trace["termination_reason"] == "token_budget"
    assert trace["attempts"][0]["terminated_by"] == ["token_budget"]
    assert "Token usage limit reached" in trace["attempts"][0]["stop_reason"]
    assert [e["source"] for e in trace["entries"] if e["kind"] == "message"] == ["user", "analyst"]
    assert verify_trace(trace).ok


def test_max_messages_stops_the_conversation(configure, evidence, review_config):
    trace = review_signal(evidence, configure(review_config, max_messages=2), symbol="AAPL").trace
    assert trace["termination_reason"] == "max_messages"
    assert trace["outcome"]["fallback_cause"]["kind"] == "max_messages"


def test_config_without_a_signal_writer_is_an_error(configure, evidence, review_config):
    from tmpipe.errors import ReviewError

    with pytest.raises(ReviewError, match="signal_writer"):
        review_signal(evidence, configure(review_config, agents=[{"name": "a", "role": "analyst"}]), symbol="AAPL")


def test_engine_result_without_inference_uses_last_action(engine_result, review_config):
    from tmpipe.review.evidence import inference_from_backtest

    evidence = build_evidence(engine_result, inference_from_backtest(engine_result), symbol="AAPL", lineage={})
    assert evidence["inference"]["source"] == "backtest_last_action"
    assert evidence["inference"]["action"] == "long" and evidence["inference"]["probabilities"] is None
    market = evidence["market"]
    assert market["realised_volatility_20d"] > 0 and market["last_close"] == evidence["inference"]["reference_price"]
    signal = review_signal(evidence, review_config, symbol="AAPL").signal
    # Without probabilities the confidence is unknown, so the policy will not approve a position.
    assert (signal["action"], signal["review_status"]) == ("HOLD", "downgraded")
    assert "confidence unknown" in signal["rationale"]


@pytest.mark.parametrize("skill", ["insignificant", "untested"])
def test_a_model_without_demonstrated_skill_gives_hold_and_the_evidence_says_why(
        lineage, engine_result, inference_result, review_config, skill):
    if skill == "insignificant":
        engine_result["skill"]["p_value"] = 0.4
    else:  # e.g. the upstream backend: no walk-forward skill test
        for key in ("skill", "report", "baselines"):
            del engine_result[key]
    evidence = build_evidence(engine_result, inference_result, symbol="AAPL", lineage=lineage)
    evaluation = evidence["backtest"]["evaluation"]
    if skill == "insignificant":
        assert evaluation["verdict"].startswith("No demonstrated skill (timing p-value not below 0.05): "
                                                "out-of-sample Sharpe after costs 1.25")
        assert "buy_and_hold 0.70 (difference +0.55, -0.20..+1.30)" in evaluation["verdict"]
        failed = "out-of-sample timing-skill p-value 0.4000 < 0.0500: FAIL (no demonstrated skill)"
    else:
        assert evaluation is None
        failed = "out-of-sample timing-skill p-value unknown < 0.0500: FAIL (no demonstrated skill)"
    signal = review_signal(evidence, review_config, symbol="AAPL").signal
    assert (signal["action"], signal["review_status"]) == ("HOLD", "downgraded")
    assert failed in signal["rationale"]
