"""Merge a symbol's six layers, enforce the spec's limits, and keep provenance per key."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

from tmpipe.config.layers import (
    DAG_RUN_CONF,
    SCHEMA_DEFAULTS,
    SPEC_DEFAULTS,
    SPEC_SYMBOL,
    WEBUI_LINK,
    Layer,
    checked_layer,
    env_layer,
)
from tmpipe.config.sections import DataConfig, EngineConfig, MlflowConfig, ReviewConfig, StageConfig, TrademasterConfig, WebuiConfig
from tmpipe.errors import ConfigBoundsError, SpecError
from tmpipe.spec import schemas
from tmpipe.spec.loader import BOUNDED_KEYS
from tmpipe.spec.model import Spec
from tmpipe.spec.problems import Problem
from tmpipe.spec.trust import secret_env_problem, secret_env_values
from tmpipe.symbols import validate_symbol


@dataclass(frozen=True)
class Provenance:
    layer: str
    source: str | None

    def __str__(self) -> str:
        return f"{self.layer} ({self.source})" if self.source else self.layer


@dataclass(frozen=True)
class ResolvedConfig:
    symbol: str
    values: dict[str, Any]
    provenance: dict[str, Provenance]

    @cached_property
    def sections(self) -> StageConfig:
        """The typed sections; ``values`` passed the JSON Schemas layer by layer."""
        return StageConfig.from_values(self.values)

    @property
    def data(self) -> DataConfig:
        return self.sections.data

    @property
    def engine(self) -> EngineConfig:
        """The engine's input: the data and trademaster sections."""
        return self.sections.engine

    @property
    def trademaster(self) -> TrademasterConfig:
        return self.sections.trademaster

    @property
    def review(self) -> ReviewConfig:
        return self.sections.review

    @property
    def mlflow(self) -> MlflowConfig:
        return self.sections.mlflow

    @property
    def webui(self) -> WebuiConfig:
        return self.sections.webui


def spec_layers(spec: Spec, symbol: str, environ: Mapping[str, str]) -> list[Layer]:
    """Layers 1-4: what the deployment says before any run is triggered."""
    doc = spec.document
    layers = [
        _schema_layer(),
        _spec_layer(SPEC_DEFAULTS, spec.defaults, doc, ("defaults",)),
        env_layer(environ),
    ]
    if symbol in spec.symbols:
        layers.append(_spec_layer(SPEC_SYMBOL, spec.symbols[symbol], doc, ("symbols", symbol)))
    return layers


def _spec_layer(name: str, values: dict[str, Any], doc, prefix: tuple) -> Layer:
    sources = {path: doc.source((*prefix, *path)) for path in _leaf_paths(values)}
    return Layer(name, values, sources, default_source=doc.file)


def resolve(
    spec: Spec,
    symbol: str,
    *,
    conf_config: dict[str, Any] | None = None,
    link_config: dict[str, Any] | None = None,
    link_source: str = "webui",
    environ: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """The symbol's config: six layers merged, each validated first, limits enforced after."""
    validate_symbol(symbol)
    layers = spec_layers(spec, symbol, os.environ if environ is None else environ)
    layers.append(checked_layer(DAG_RUN_CONF, conf_config, source="dag_run.conf.config"))
    layers.append(checked_layer(WEBUI_LINK, link_config, source=link_source))
    values, provenance = _merge_layers(layers)
    _enforce_limits(spec, values, provenance)
    _check_secret_env_names(spec, values, provenance)
    return ResolvedConfig(symbol, values, provenance)


def resolve_in_run(spec: Spec, symbol: str, conf_config: dict[str, Any] | None, link: Mapping[str, Any] | None) -> ResolvedConfig:
    """The symbol's config in a DAG run: dag_run.conf's ``config`` and its WebUI link layer
    (resolve_symbols' ``{link_id, config, notes}``, None without a link) over the spec's layers.
    Every step of the run that works on the symbol resolves it this way."""
    link = link or {}
    return resolve(spec, symbol, conf_config=conf_config, link_config=link.get("config"),
                   link_source=f"webui link {link.get('link_id')}")


def _merge_layers(layers: list[Layer]) -> tuple[dict[str, Any], dict[str, Provenance]]:
    values: dict[str, Any] = {}
    provenance: dict[str, Provenance] = {}
    for layer in layers:
        _merge(values, layer.values)
        for path in _leaf_paths(layer.values):
            for stale in [k for k in provenance if k.startswith(".".join(path) + ".")]:
                del provenance[stale]
            provenance[".".join(path)] = Provenance(layer.name, layer.source(path))
    return values, provenance


def _check_secret_env_names(spec: Spec, values: dict[str, Any], provenance: dict[str, Provenance]) -> None:
    """Every secret env var name, whichever layer set it, matches the spec's pattern."""
    problems = []
    for path, value in secret_env_values(values):
        message = secret_env_problem(value, spec.secret_env_pattern)
        if message:
            origin = provenance[".".join(path)]
            file, _, line_text = (origin.source or origin.layer).rpartition(":")
            file, line = (file, int(line_text)) if line_text.isdigit() else (origin.source or origin.layer, 1)
            problems.append(Problem(file, line, 1, ".".join(path), f"{message} (set by {origin.layer})"))
    if problems:
        raise SpecError(problems)


def _merge(target: dict[str, Any], layer: dict[str, Any]) -> None:
    """Deep-merge mappings; lists and scalars replace."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _leaf_paths(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, value in values.items():
        path = (*prefix, key)
        paths += _leaf_paths(value, path) if isinstance(value, dict) and value else [path]
    return paths


def _enforce_limits(spec: Spec, values: dict[str, Any], provenance: dict[str, Provenance]) -> None:
    for (section, key), limit_name in BOUNDED_KEYS.items():
        limit = getattr(spec.limits, limit_name)
        value = values[section][key]
        if value > limit:
            origin = provenance[f"{section}.{key}"]
            raise ConfigBoundsError(f"{section}.{key}", value, f"limits.{limit_name}={limit}", origin.layer, origin.source)


def _schema_layer() -> Layer:
    values = schemas.fill_defaults(schemas.STAGE_CONFIG)
    sources = {path: f"schemas/sections/{path[0]}.schema.json" for path in _leaf_paths(values)}
    return Layer(SCHEMA_DEFAULTS, values, sources)


def resolve_shared(spec: Spec, *, conf_config: dict[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> StageConfig:
    """Settings that are not per symbol (which WebUI, which MLflow): layers 1-3 and 5, typed."""
    layers = [_schema_layer(), _spec_layer(SPEC_DEFAULTS, spec.defaults, spec.document, ("defaults",)),
              env_layer(os.environ if environ is None else environ)]
    layers.append(checked_layer(DAG_RUN_CONF, conf_config, source="dag_run.conf.config"))
    values, provenance = _merge_layers(layers)
    _check_secret_env_names(spec, values, provenance)
    return StageConfig.from_values(values)
