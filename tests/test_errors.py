"""Errors as data: every error of the hierarchy has the same fields, and a failed stage's record
says what failed without anyone parsing "Class: message" text."""

import pytest

from tmpipe.errors import (
    DataError,
    ModelNotPromotedError,
    ReviewError,
    SpecError,
    StoreError,
    TmpipeError,
    TrackingError,
    describe,
    error_record,
)
from tmpipe.spec.problems import Problem


@pytest.mark.parametrize(
    "error, fields",
    [
        (TrackingError("MLflow get run failed"), ("TrackingError", True, None)),
        (ModelNotPromotedError("no champion"), ("ModelNotPromotedError", False, None)),
        (StoreError("GET /api: 503", status=503, retryable=True), ("StoreError", True, 503)),
        (DataError("no rows", path="bars.csv"), ("DataError", False, None)),
        (TrackingError("refused", retryable=False, status=None), ("TrackingError", False, None)),
    ],
)
def test_every_error_has_kind_retryable_and_status_as_fields(error, fields):
    assert (error.kind, error.retryable, error.status) == fields
    assert (error.stage, error.symbol) == (None, None)


def test_review_error_names_its_symbol_and_the_record_keeps_it():
    from tmpipe.review.evidence import build_evidence

    with pytest.raises(ReviewError) as failed:
        build_evidence({}, {"action": "buy"}, symbol="AAA", lineage={})
    assert failed.value.symbol == "AAA"
    assert error_record(failed.value, stage="review")["symbol"] == "AAA"


def test_a_record_is_one_redacted_line_with_the_fields_of_the_error():
    secret_url = "https://user:hunter2@mlflow.example/api"
    error = StoreError(f"POST {secret_url}: 502\nbody: <html>", status=502, retryable=True)
    record = error_record(error, stage="persist", symbol="AAA")
    assert record == {"stage": "persist", "symbol": "AAA", "kind": "StoreError", "message": record["message"],
                      "retryable": True, "status": 502}
    assert "hunter2" not in record["message"] and "\n" not in record["message"]
    assert describe(record) == f"StoreError: {record['message']}"


def test_an_error_outside_the_hierarchy_is_recorded_as_retryable_and_a_spec_error_by_its_first_problem():
    assert error_record(KeyError("epochs"), stage="train_backtest") == {
        "stage": "train_backtest", "symbol": None, "kind": "KeyError", "message": "'epochs'", "retryable": True, "status": None}
    problems = [Problem("spec.yaml", 3, 1, "dag", "dag_id is required"), Problem("spec.yaml", 9, 1, "defaults", "bad")]
    record = error_record(SpecError(problems), stage="resolve_symbols")
    assert record["message"] == str(problems[0]) and record["retryable"] is False
    assert issubclass(SpecError, TmpipeError)
