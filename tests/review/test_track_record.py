"""The evidence pack carries the symbol's track record; a record worse than a coin downgrades the signal."""

from __future__ import annotations

import pytest

from tmpipe.review import build_evidence, review_signal


def _record(hit_rate: float, directional: int) -> dict:
    return {"graded": directional, "directional": directional, "hit_rate": hit_rate, "rolling_hit_rate": hit_rate,
            "rolling_window": 20, "brier": 0.3, "ic": 0.0, "cumulative_pnl": -0.05, "buy_and_hold": 0.02,
            "first_as_of": "2024-01-02", "last_as_of": "2024-06-20"}


@pytest.mark.parametrize("record, status", [
    (_record(0.35, 40), "downgraded"),  # worse than a coin over enough signals
    (_record(0.60, 40), "approved"),
    (_record(0.35, 5), "approved"),     # too few graded signals to judge
    (None, "approved"),
])
def test_a_symbol_worse_than_a_coin_is_downgraded(engine_result, inference_result, lineage, review_config, record, status):
    evidence = build_evidence(engine_result, inference_result, symbol="AAPL", lineage=lineage, track_record=record)
    assert evidence.get("track_record") == record
    outcome = review_signal(evidence, review_config, symbol="AAPL")
    assert outcome.signal["review_status"] == status
    if status == "downgraded":
        assert outcome.signal["action"] == "HOLD"
        assert "hit rate of graded signals 0.3500 >= 0.5000: FAIL" in outcome.signal["rationale"]


def test_the_threshold_can_be_turned_off(engine_result, inference_result, lineage, review_config, configure):
    evidence = build_evidence(engine_result, inference_result, symbol="AAPL", lineage=lineage,
                              track_record=_record(0.2, 100))
    outcome = review_signal(evidence, configure(review_config, track_record__min_hit_rate=None), symbol="AAPL")
    assert outcome.signal["review_status"] == "approved"
