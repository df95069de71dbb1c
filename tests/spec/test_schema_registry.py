"""One registry holds every schema; one function fills schema defaults."""

from __future__ import annotations

import copy

from tmpipe.review import schema_ids as review_schemas
from tmpipe.spec import schemas


def test_the_review_reads_its_schemas_from_the_one_registry():
    for schema_id in (review_schemas.SIGNAL, review_schemas.TRACE, review_schemas.EVIDENCE, review_schemas.REVIEW_SECTION):
        assert review_schemas.load_schema(schema_id) is schemas.schema(schema_id)


def test_fill_defaults_keeps_explicit_nulls_and_fills_objects_inside_lists():
    partial = {"model_client": {"api_key_env": None}, "agents": [{"name": "lead", "role": "signal_writer"}]}
    before = copy.deepcopy(partial)
    filled = schemas.fill_defaults(review_schemas.REVIEW_SECTION, partial)
    assert filled["model_client"]["api_key_env"] is None  # set to null on purpose, not the default
    assert filled["model_client"]["model"] == "gpt-4o-mini"
    assert filled["agents"] == [{"name": "lead", "role": "signal_writer", "system_prompt": None}]
    assert filled["thresholds"]["min_confidence"] == 0.55 and partial == before


def test_fill_defaults_follows_references_inside_a_document_and_defaults_next_to_a_reference():
    assert schemas.fill_defaults(review_schemas.EVIDENCE)["backtest"] == {"test": {}, "buy_and_hold": {}}
    assert schemas.fill_defaults(schemas.PIPELINE_SPEC)["modes"] == {"default": "both"}
