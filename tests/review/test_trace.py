"""The hash-chained trace: an untouched trace verifies, any single edited character does not."""

from __future__ import annotations

import copy
import json

import pytest

from tmpipe.review import review_signal, verify_trace


@pytest.fixture
def trace(evidence, review_config) -> dict:
    return review_signal(evidence, review_config, symbol="AAPL").trace


def test_untouched_trace_verifies_also_after_a_json_round_trip(trace, tmp_path):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(trace, indent=2))
    assert verify_trace(json.loads(path.read_text())).ok


def _edit_one_character(text: str, needle: str) -> str:
    """Change the first character after ``needle`` (keeping the JSON parseable)."""
    at = text.index(needle) + len(needle)
    replacement = "7" if text[at] != "7" else "8"
    return text[:at] + replacement + text[at + 1:]


@pytest.mark.parametrize("needle", [
    '"content": "Analyst (rules model) for AAPL as of 20',  # an agent message
    '"bytes": ',  # the evidence reference (trace body)
    '"started_at": "20',  # a timing field
    '"sha256": "',  # a hash itself
    '"prompt": ',  # token usage of an entry
])
def test_a_single_changed_character_is_detected(trace, needle):
    text = json.dumps(trace, indent=2)
    edited = json.loads(_edit_one_character(text, needle))
    assert edited != trace
    result = verify_trace(edited)
    assert not result.ok and result.problems


def test_every_character_of_the_entries_is_covered(trace):
    """Exhaustive over one agent message: flipping any single character is caught."""
    message = next(e for e in trace["entries"] if e["kind"] == "message" and e["source"] == "risk_manager")
    for position in range(len(message["content"])):
        edited = copy.deepcopy(trace)
        target = next(e for e in edited["entries"] if e["index"] == message["index"])
        flipped = "x" if target["content"][position] != "x" else "y"
        target["content"] = target["content"][:position] + flipped + target["content"][position + 1:]
        assert not verify_trace(edited).ok, position


def test_removing_or_reordering_entries_is_detected(trace):
    dropped = copy.deepcopy(trace)
    dropped["entries"].pop()
    assert not verify_trace(dropped).ok
    swapped = copy.deepcopy(trace)
    swapped["entries"][1], swapped["entries"][2] = swapped["entries"][2], swapped["entries"][1]
    assert not verify_trace(swapped).ok


def test_unknown_keys_are_rejected_by_the_schema(trace):
    extended = copy.deepcopy(trace)
    extended["approved_by"] = "nobody"
    result = verify_trace(extended)
    assert not result.ok and "approved_by" in " ".join(result.problems)
