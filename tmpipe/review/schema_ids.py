"""The review's schema ids and its message format; schemas load and validate through tmpipe.spec.schemas."""

from __future__ import annotations

from typing import Any

from tmpipe.spec import schemas

SIGNAL = "urn:tmpipe:trading_signal"
TRACE = "urn:tmpipe:llm_artifact"
EVIDENCE = "urn:tmpipe:evidence"
REVIEW_SECTION = "urn:tmpipe:section:review"


def load_schema(schema_id: str) -> dict[str, Any]:
    """The parsed schema ``schema_id`` from the project's one registry."""
    return schemas.schema(schema_id)


def schema_problems(document: object, schema_id: str) -> list[str]:
    """Every violation of schema ``schema_id`` as ``json.path: message`` (empty when valid)."""
    errors = sorted(schemas.validator(schema_id).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message}" for e in errors]

