"""Typed config sections: the same keys as the JSON Schemas, frozen, and built from resolved values."""

from __future__ import annotations

import subprocess
import sys
import types
import typing

import pydantic
import pytest

from tmpipe.config.resolver import resolve
from tmpipe.config.sections import StageConfig
from tmpipe.spec import schemas
from tmpipe.spec.loader import load_spec


def _schema_shape(resolver, node: dict) -> dict:
    """Object keys -> (nested shape or None, enum values or None, nullable) from a schema node."""
    resolver, node = schemas._target(resolver, node)
    if node.get("type") == "array":
        return _schema_shape(resolver, node["items"])
    shape = {}
    for key, prop in node.get("properties", {}).items():
        sub_resolver, target = schemas._target(resolver, prop)
        nested = target.get("properties") or target.get("items", {}).get("properties")
        kind = _schema_shape(sub_resolver, target) if nested else None
        types_ = target.get("type")
        nullable = isinstance(types_, list) and "null" in types_
        enum = target.get("enum", target.get("items", {}).get("enum"))  # an array of enum items: its items' values
        shape[key] = (kind, tuple(enum) if enum is not None else None, nullable)
    return shape


def _model_shape(model: type[pydantic.BaseModel]) -> dict:
    shape = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        args = typing.get_args(annotation)
        nullable = type(None) in args
        members = [a for a in args if a is not type(None)] if isinstance(annotation, types.UnionType) else [annotation]
        inner = members[0] if len(members) == 1 else None
        if typing.get_origin(inner) is tuple:  # tuple[Model, ...] for an array of objects
            inner = typing.get_args(inner)[0]
        kind = _model_shape(inner) if isinstance(inner, type) and issubclass(inner, pydantic.BaseModel) else None
        enum = typing.get_args(inner) if typing.get_origin(inner) is typing.Literal else None
        shape[name] = (kind, enum, nullable)
    return shape


def test_every_schema_key_has_a_model_field_of_the_same_kind_and_vice_versa():
    resolver = schemas.registry().resolver(base_uri=schemas.STAGE_CONFIG)
    assert _model_shape(StageConfig) == _schema_shape(resolver, schemas.schema(schemas.STAGE_CONFIG))


def test_built_from_schema_defaults_a_dump_gives_back_the_defaults_exactly():
    defaults = schemas.fill_defaults(schemas.STAGE_CONFIG)
    assert StageConfig.from_values({}).model_dump(mode="json") == defaults
    assert type(StageConfig.from_values({}).trademaster.initial_cash) is int  # 100000 stays an int


def test_resolved_config_exposes_typed_frozen_sections(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("schema_version: 1\ndag:\n  dag_id: demo\ndefaults:\n  trademaster:\n    epochs: 2\n")
    resolved = resolve(load_spec(path), "AAA", environ={"TMPIPE__REVIEW__THRESHOLDS__MIN_SHARPE": "0.5"})
    assert resolved.trademaster.epochs == 2 and resolved.review.thresholds.min_sharpe == 0.5
    assert resolved.review.agents[-1].role == "signal_writer" and resolved.webui.backend == "embedded"
    with pytest.raises(pydantic.ValidationError):
        resolved.trademaster.epochs = 3  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="epoch\n"):
        StageConfig.from_values({"trademaster": {"epoch": 3}})


def test_a_misspelt_attribute_is_a_type_check_error(tmp_path):
    pytest.importorskip("mypy")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from tmpipe.config.sections import StageConfig\n\n\n"
        "def epochs(config: StageConfig) -> int:\n"
        "    return config.trademaster.epochs\n\n\n"
        "def misspelt(config: StageConfig) -> int:\n"
        "    return config.trademaster.epoch\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports", "--no-error-summary",
         f"--cache-dir={tmp_path / 'cache'}", str(probe)],
        capture_output=True, text=True, timeout=300,
    )
    assert checked.stdout.splitlines() == [
        f'{probe}:9: error: "TrademasterConfig" has no attribute "epoch"; maybe "epochs"?  [attr-defined]']
