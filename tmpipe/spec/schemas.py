"""The project's JSON Schemas: one registry, validators by id, and schema defaults.

Schemas live in ``schemas/`` (installed as ``tmpipe.schemas``) and refer to each other by
``urn:tmpipe:...`` ids, so a fragment such as the stage config is written once and reused.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

STAGE_CONFIG = "urn:tmpipe:stage_config"
PIPELINE_SPEC = "urn:tmpipe:pipeline_spec"
DAG_RUN_CONF = "urn:tmpipe:dag_run_conf"
SYMBOL = "urn:tmpipe:symbol"


@cache
def _documents() -> dict[str, dict[str, Any]]:
    root = files("tmpipe.schemas")
    docs = {}
    for entry in [*root.iterdir(), *root.joinpath("sections").iterdir()]:
        if entry.name.endswith(".schema.json"):
            doc = json.loads(entry.read_text(encoding="utf-8"))
            docs[doc["$id"]] = doc
    return docs


def schema_file_names() -> dict[str, str]:
    """Schema id -> file name, for messages that point a user at a schema."""
    root = files("tmpipe.schemas")
    names = {}
    for entry in [*root.iterdir(), *root.joinpath("sections").iterdir()]:
        if entry.name.endswith(".schema.json"):
            names[json.loads(entry.read_text(encoding="utf-8"))["$id"]] = entry.name
    return names


def schema(schema_id: str) -> dict[str, Any]:
    return _documents()[schema_id]


@cache
def registry() -> Registry:
    return Registry().with_resources(
        (schema_id, Resource.from_contents(doc)) for schema_id, doc in _documents().items()
    )


@cache
def validator(schema_id: str) -> Draft202012Validator:
    return Draft202012Validator(
        schema(schema_id), registry=registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def resolve_ref(node: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` chains to the schema that defines ``properties``."""
    while "$ref" in node:
        node = registry().contents(node["$ref"])
    return node


def defaults(schema_id: str) -> dict[str, Any]:
    """Every ``default`` under an object schema, nested objects included (layer 1)."""
    return _object_defaults(schema(schema_id))


def _object_defaults(node: dict[str, Any]) -> dict[str, Any]:
    node = resolve_ref(node)
    result: dict[str, Any] = {}
    for key, prop in node.get("properties", {}).items():
        if "default" in prop:
            result[key] = json.loads(json.dumps(prop["default"]))
            continue
        target = resolve_ref(prop)
        if target.get("type") == "object" and "properties" in target:
            result[key] = _object_defaults(target)
    return result
