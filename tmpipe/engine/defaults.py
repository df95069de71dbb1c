"""Schema defaults for the engine's own entry points (CLI, benchmarks, tests).

The pipeline's config resolver fills every key from the same schemas; these helpers let the
engine run on its own without a spec. Schemas are read through tmpipe.spec.schemas, the one
registry of the project's JSON Schemas.
"""

from __future__ import annotations

from typing import Any, Mapping

from tmpipe.config.sections import EngineConfig
from tmpipe.spec import schemas

ENGINE_RESULT = "urn:tmpipe:engine_result"
RESULT_SCHEMA_VERSION = 1  # the schema_version every backend writes into its results


def default_config(*, data: Mapping[str, Any] | None = None, trademaster: Mapping[str, Any] | None = None) -> EngineConfig:
    """The engine config at schema defaults, with per-section key overrides merged in (checked by the models)."""
    return EngineConfig.from_values({"data": data, "trademaster": trademaster})


def result_errors(result: dict) -> list[str]:
    """Schema violations of an engine result (empty when valid), as 'path: message' lines."""
    from jsonschema import Draft202012Validator

    kind = result.get("kind") if isinstance(result, dict) else None
    if kind in ("train_backtest", "inference"):  # name the offending key, not just "no oneOf branch"
        validator = Draft202012Validator({"$ref": f"{ENGINE_RESULT}#/$defs/{kind}"}, registry=schemas.registry())
    else:
        validator = schemas.validator(ENGINE_RESULT)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(result)]
