"""Loading the review's JSON Schemas, validating against them and filling section defaults."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib.resources import files

SIGNAL = "trading_signal.schema.json"
TRACE = "llm_artifact.schema.json"
EVIDENCE = "evidence.schema.json"
REVIEW_SECTION = "sections/review.schema.json"


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The parsed schema file ``name`` from the tmpipe.schemas package."""
    return json.loads(files("tmpipe.schemas").joinpath(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator(name: str):
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema(name), format_checker=jsonschema.FormatChecker())


def schema_problems(document: object, name: str) -> list[str]:
    """Every violation of schema ``name`` as ``json.path: message`` (empty when valid)."""
    errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message}" for e in errors]


def fill_defaults(value: dict | None, schema: dict | None = None) -> dict:
    """``value`` with every missing key of the review section taken from the schema defaults.

    Objects are filled recursively from their properties' defaults; arrays replace and are
    not merged, as in the config layers.
    """
    schema = schema or load_schema(REVIEW_SECTION)
    out = copy.deepcopy(value) if value is not None else copy.deepcopy(schema.get("default", {}))
    for key, sub in schema.get("properties", {}).items():
        if key not in out:
            if "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            elif sub.get("type") == "object":
                out[key] = {}  # filled from its properties' defaults below
            else:
                continue
        if sub.get("type") == "object" and isinstance(out[key], dict):
            out[key] = fill_defaults(out[key], sub)
        elif key == "agents" and isinstance(out[key], list):
            item = sub["items"]
            out[key] = [fill_defaults(agent, item) if isinstance(agent, dict) else agent for agent in out[key]]
    return out
