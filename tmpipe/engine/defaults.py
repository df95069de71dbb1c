"""Schema defaults for the engine's own entry points (CLI, benchmarks, tests).

The pipeline's config resolver fills every key from the same schemas; this helper lets the
engine run on its own without depending on that resolver.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from importlib.resources import files

from tmpipe.errors import SymbolError

SECTIONS = ("data", "trademaster", "review", "mlflow", "webui")


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """A JSON schema shipped in tmpipe.schemas, e.g. 'sections/data' or 'engine_result'."""
    resource = files("tmpipe.schemas").joinpath(*f"{name}.schema.json".split("/"))
    return json.loads(resource.read_text(encoding="utf-8"))


def _defaults_of(schema: dict) -> dict:
    out = {}
    for key, prop in schema.get("properties", {}).items():
        if "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
        elif prop.get("type") == "object" and "properties" in prop:
            out[key] = _defaults_of(prop)
    return out


def schema_defaults(section: str) -> dict:
    """Every key of one config section at its schema default (nested objects included)."""
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; expected one of {', '.join(SECTIONS)}")
    return _defaults_of(load_schema(f"sections/{section}"))


def default_config(**overrides: dict) -> dict:
    """A full stage config at schema defaults, with per-section key overrides merged in."""
    config = {section: schema_defaults(section) for section in SECTIONS}
    for section, values in overrides.items():
        config[section].update(values)
    return config


def check_symbol(symbol: str) -> str:
    """Reject a symbol that is not safe inside a path (pattern from schemas/symbol.schema.json)."""
    pattern = load_schema("symbol")["pattern"]
    if not isinstance(symbol, str) or not re.fullmatch(pattern, symbol):
        raise SymbolError(f"symbol {symbol!r} does not match {pattern}")
    return symbol
