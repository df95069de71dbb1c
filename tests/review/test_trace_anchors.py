"""A trace cannot be forged by resealing it: its head is also in the signal, and an HMAC signs it when keyed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tmpipe.review import build_evidence, review_signal, verify_trace
from tmpipe.review.cli import review
from tmpipe.review.trace import HMAC_KEY_ENV, seal

from .forgery import forge_buy, forge_signal_to_match

KEY = "hmac-key-for-tests-0123456789"


@pytest.fixture(autouse=True)
def no_signing_key(monkeypatch):
    """Tests opt in to signing; a key in the developer's shell must not change them."""
    monkeypatch.delenv(HMAC_KEY_ENV, raising=False)


@pytest.fixture
def hold_evidence(engine_result, inference_result, lineage) -> dict:
    """A flat inference: the rules team approves a HOLD, which the forger turns into a BUY."""
    inference = {**inference_result, "action": "flat", "target_position": 0.0,
                 "probabilities": {"short": 0.2, "flat": 0.6, "long": 0.2}}
    return build_evidence(engine_result, inference, symbol="AAPL", lineage=lineage)


def write_review(directory: Path, outcome) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    signal_path, trace_path = directory / "signal.json", directory / "trace.json"
    signal_path.write_text(json.dumps(outcome.signal, indent=2))
    trace_path.write_text(json.dumps(outcome.trace, indent=2))
    return signal_path, trace_path


def verify(*args: str):
    return CliRunner().invoke(review, ["verify", *map(str, args)])


def test_the_signal_records_the_trace_head_and_the_trace_its_decision(evidence, review_config):
    outcome = review_signal(evidence, review_config, symbol="AAPL")
    assert outcome.signal["trace_head_sha256"] == outcome.trace["chain"]["head"]
    for key in ("action", "confidence", "review_status", "fallback_cause", "target_position", "stop_loss", "take_profit"):
        assert outcome.trace["outcome"][key] == outcome.signal[key], key


def test_a_resealed_forgery_passes_the_chain_alone_but_not_against_its_signal(hold_evidence, review_config, tmp_path):
    outcome = review_signal(hold_evidence, review_config, symbol="AAPL")
    assert outcome.signal["action"] == "HOLD"
    signal_path, trace_path = write_review(tmp_path, outcome)
    assert verify(trace_path, "--signal", signal_path).exit_code == 0

    trace_path.write_text(json.dumps(forge_buy(outcome.trace), indent=2))
    alone = verify(trace_path)
    assert alone.exit_code == 0 and verify_trace(json.loads(trace_path.read_text())).ok  # what the issue saw
    checked = verify(trace_path, "--signal", signal_path)
    assert checked.exit_code == 1 and len(checked.output.splitlines()) == 1
    assert f"tampered: {signal_path} differs: head {forge_buy(outcome.trace)['chain']['head'][:16]}... in the trace" in checked.output
    assert "action 'BUY' in the trace's outcome, 'HOLD' there" in checked.output


def test_a_signal_edited_alone_disagrees_with_the_trace_outcome(hold_evidence, review_config, tmp_path):
    outcome = review_signal(hold_evidence, review_config, symbol="AAPL")
    edited = {**outcome.signal, "action": "BUY", "target_position": 1.0, "stop_loss": 200.0, "take_profit": 230.0}
    signal_path, trace_path = write_review(tmp_path, outcome)
    signal_path.write_text(json.dumps(edited))
    result = verify(trace_path, "--signal", signal_path)
    assert result.exit_code == 1
    assert "differs: action 'HOLD' in the trace's outcome, 'BUY' there; " in result.output
    assert "head" not in result.output.split("differs:")[1]  # the head itself still matches


def test_forging_trace_and_signal_together_is_only_caught_elsewhere(hold_evidence, review_config, tmp_path):
    """The documented limit: a signal file is no better anchor than the trace next to it."""
    outcome = review_signal(hold_evidence, review_config, symbol="AAPL")
    signal_path, trace_path = write_review(tmp_path, outcome)
    forged = forge_buy(outcome.trace)
    trace_path.write_text(json.dumps(forged))
    signal_path.write_text(json.dumps(forge_signal_to_match(outcome.signal, forged)))
    assert verify(trace_path, "--signal", signal_path).exit_code == 0


def test_a_signal_without_a_head_or_for_another_symbol_does_not_confirm(evidence, review_config, tmp_path):
    outcome = review_signal(evidence, review_config, symbol="AAPL")
    signal_path, trace_path = write_review(tmp_path, outcome)
    signal_path.write_text(json.dumps({k: v for k, v in outcome.signal.items() if k != "trace_head_sha256"}))
    headless = verify(trace_path, "--signal", signal_path)
    assert headless.exit_code == 1 and "records no trace head" in headless.output
    signal_path.write_text(json.dumps({**outcome.signal, "symbol": "MSFT"}))
    other = verify(trace_path, "--signal", signal_path)
    assert other.exit_code == 1 and "differs: symbol AAPL in the trace, MSFT there" in other.output
    signal_path.write_text(json.dumps({**outcome.signal, "trace_head_sha256": outcome.trace["chain"]["head"] + "\n"}))
    malformed = verify(trace_path, "--signal", signal_path)
    assert malformed.exit_code == 1 and f"{signal_path}: $.trace_head_sha256: " in malformed.output
    signal_path.write_text("[1, 2]")
    not_object = verify(trace_path, "--signal", signal_path)
    assert not_object.exit_code == 1 and "cannot check" in not_object.output and "not a JSON object" in not_object.output


def test_a_keyed_review_signs_the_chain_without_writing_the_key(evidence, review_config, tmp_path, monkeypatch):
    monkeypatch.setenv(HMAC_KEY_ENV, KEY)
    outcome = review_signal(evidence, review_config, symbol="AAPL")
    signature = outcome.trace["chain"]["hmac"]
    assert signature["algorithm"] == "hmac-sha256" and len(signature["value"]) == 64
    assert verify_trace(outcome.trace).ok
    signal_path, trace_path = write_review(tmp_path, outcome)
    assert KEY not in trace_path.read_text() and KEY not in signal_path.read_text()
    result = verify(trace_path, "--signal", signal_path)
    assert result.exit_code == 0 and "hmac-sha256 signature valid" in result.output
    assert KEY not in result.output


def test_a_resealed_signed_trace_is_unsigned_or_invalid_under_the_key(hold_evidence, review_config, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv(HMAC_KEY_ENV, KEY)
    outcome = review_signal(hold_evidence, review_config, symbol="AAPL")
    _, trace_path = write_review(tmp_path, outcome)
    forged = forge_buy(outcome.trace)  # resealing rebuilds the chain: the forger has no key to sign it
    trace_path.write_text(json.dumps(forged))
    unsigned = verify(trace_path)
    assert unsigned.exit_code == 1 and f"unsigned: the trace has no chain.hmac but {HMAC_KEY_ENV} is set" in unsigned.output
    forged["chain"]["hmac"] = outcome.trace["chain"]["hmac"]  # the old signature copied over
    trace_path.write_text(json.dumps(forged))
    invalid = verify(trace_path)
    assert invalid.exit_code == 1 and "signature invalid" in invalid.output


def test_a_timing_edit_resealed_keeps_the_head_but_breaks_the_signature(evidence, review_config, tmp_path, monkeypatch):
    monkeypatch.setenv(HMAC_KEY_ENV, KEY)
    outcome = review_signal(evidence, review_config, symbol="AAPL")
    edited = copy.deepcopy(outcome.trace)
    edited["timing"]["started_at"] = "2020-01-01T00:00:00+00:00"
    signature = edited["chain"]["hmac"]
    seal(edited)["chain"]["hmac"] = signature
    assert edited["chain"]["head"] == outcome.trace["chain"]["head"]
    signal_path, trace_path = write_review(tmp_path, outcome)
    trace_path.write_text(json.dumps(edited))
    result = verify(trace_path, "--signal", signal_path)
    assert result.exit_code == 1 and "signature invalid" in result.output and "tampered" not in result.output


def test_signature_status_without_a_key_or_with_another_key(evidence, review_config, tmp_path, monkeypatch):
    unsigned_path = write_review(tmp_path / "unsigned", review_signal(evidence, review_config, symbol="AAPL"))[1]
    monkeypatch.setenv(HMAC_KEY_ENV, KEY)
    signed_path = write_review(tmp_path / "signed", review_signal(evidence, review_config, symbol="AAPL"))[1]

    monkeypatch.delenv(HMAC_KEY_ENV)
    not_checked = verify(signed_path)
    assert not_checked.exit_code == 0 and f"signed, not checked ({HMAC_KEY_ENV} is not set)" in not_checked.output
    plain = verify(unsigned_path)
    assert plain.exit_code == 0 and plain.output.rstrip().endswith("; unsigned")

    monkeypatch.setenv(HMAC_KEY_ENV, "another-key")
    assert "signature invalid" in verify(signed_path).output
    assert "unsigned: " in verify(unsigned_path).output


def test_store_locations_without_their_anchor_are_a_usage_error(evidence, review_config, tmp_path):
    _, trace_path = write_review(tmp_path, review_signal(evidence, review_config, symbol="AAPL"))
    for option in ("--tracking-uri", "--url"):
        result = verify(trace_path, option, "http://127.0.0.1:9")
        assert result.exit_code == 2 and "--tracking-uri goes with --mlflow-run" in result.output
