"""The project's JSON Schemas: the one registry, validators by id, and the one default-filler.

Schemas live in ``schemas/`` (installed as ``tmpipe.schemas``) and refer to each other by
``urn:tmpipe:...`` ids, so a fragment such as the stage config is written once and reused.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

if TYPE_CHECKING:
    from referencing._core import Resolver  # the package does not re-export the type

STAGE_CONFIG = "urn:tmpipe:stage_config"
PIPELINE_SPEC = "urn:tmpipe:pipeline_spec"
DAG_RUN_CONF = "urn:tmpipe:dag_run_conf"
SYMBOL = "urn:tmpipe:symbol"


@cache
def _files() -> dict[str, tuple[str, dict[str, Any]]]:
    """Schema id -> (file name, parsed document) for every file under schemas/."""
    root = files("tmpipe.schemas")
    found = {}
    for entry in [*root.iterdir(), *root.joinpath("sections").iterdir()]:
        if entry.name.endswith(".schema.json"):
            doc = json.loads(entry.read_text(encoding="utf-8"))
            found[doc["$id"]] = (entry.name, doc)
    return found


def schema(schema_id: str) -> dict[str, Any]:
    return _files()[schema_id][1]


@cache
def registry() -> Registry:
    return Registry().with_resources(
        (schema_id, Resource.from_contents(doc)) for schema_id, (_, doc) in _files().items()
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


def fill_defaults(schema_id: str, value: Any = None) -> Any:
    """``value`` with every missing key taken from schema ``schema_id``'s defaults (the one default-filler).

    ``None`` stands for the schema's own default (or an empty object), so ``fill_defaults(id)``
    is every default of the schema (config layer 1). Objects are filled recursively, also those
    inside arrays (``review.agents[]``); an array given in ``value`` replaces the default array
    and is not merged, as in the config layers. ``value`` itself is not changed.
    """
    resolver = registry().resolver(base_uri=schema_id)
    return _fill(resolver, resolver.lookup(schema_id).contents, _MISSING if value is None else value)


_MISSING = object()  # a key the value does not set (an explicit null is kept)


def _fill(resolver: Resolver, node: dict[str, Any], value: Any) -> Any:
    if value is _MISSING and "default" in node:  # a default next to a $ref wins over the target's
        value = node["default"]
    resolver, node = _target(resolver, node)
    if value is _MISSING:
        value = node.get("default", {} if _is_object(node) else None)
    value = copy.deepcopy(value)
    if isinstance(value, dict) and "properties" in node:
        for key, prop in node["properties"].items():
            if key in value:
                value[key] = _fill(resolver, prop, value[key])
            elif "default" in prop or _is_object(_target(resolver, prop)[1]):
                value[key] = _fill(resolver, prop, _MISSING)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value = [_fill(resolver, node["items"], item) if isinstance(item, dict) else item for item in value]
    return value


def _target(resolver: Resolver, node: dict[str, Any]) -> tuple[Resolver, dict[str, Any]]:
    """The schema a ``$ref`` chain (also ``#/$defs/...`` inside a document) ends at, and its resolver."""
    while "$ref" in node:
        resolved = resolver.lookup(node["$ref"])
        resolver, node = resolved.resolver, resolved.contents
    return resolver, node


def _is_object(node: dict[str, Any]) -> bool:
    return node.get("type") == "object" and "properties" in node
