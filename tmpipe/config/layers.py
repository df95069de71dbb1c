"""The six configuration layers of a symbol, lowest precedence first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from tmpipe.errors import SpecError
from tmpipe.spec import schemas
from tmpipe.spec.problems import Problem
from tmpipe.spec.trust import operator_only_problems
from tmpipe.spec.validation import validate_data
from tmpipe.spec.yaml_positions import PositionedDocument

SCHEMA_DEFAULTS = "schema defaults"
SPEC_DEFAULTS = "spec defaults"
ENVIRONMENT = "environment"
SPEC_SYMBOL = "spec symbols"
DAG_RUN_CONF = "dag_run.conf"
WEBUI_LINK = "webui link config"
LAYER_ORDER = (SCHEMA_DEFAULTS, SPEC_DEFAULTS, ENVIRONMENT, SPEC_SYMBOL, DAG_RUN_CONF, WEBUI_LINK)
# Layers a run or the WebUI supplies; they may not set operator-only keys (tmpipe.spec.trust).
RUN_LAYERS = (DAG_RUN_CONF, WEBUI_LINK)

ENV_PREFIX = "TMPIPE__"


@dataclass(frozen=True)
class Layer:
    """A partial stage config and a function that says where each of its keys was set."""

    name: str
    values: dict[str, Any]
    sources: dict[tuple[str, ...], str] = field(default_factory=dict)
    default_source: str | None = None

    def source(self, path: tuple[str, ...]) -> str | None:
        return self.sources.get(path, self.default_source)


def env_layer(environ: Mapping[str, str]) -> Layer:
    """``TMPIPE__TRADEMASTER__EPOCHS=3`` -> ``{"trademaster": {"epochs": 3}}``.

    Values are read as YAML scalars (safely), so numbers, booleans and null keep their type.
    """
    values: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    problems: list[Problem] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if len(path) < 2 or not all(path):
            problems.append(Problem(f"env:{name}", 1, 1, ".".join(path) or "$", "expected TMPIPE__SECTION__KEY"))
            continue
        try:
            value = yaml.safe_load(environ[name])
        except yaml.YAMLError:
            value = environ[name]
        node = values
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        sources[path] = f"env:{name}"
    layer = Layer(ENVIRONMENT, values, sources)
    problems += _layer_problems(layer, file="environment")
    if problems:
        raise SpecError(problems)
    return layer


def checked_layer(name: str, values: dict[str, Any] | None, *, source: str) -> Layer:
    """A layer from an in-memory document (dag_run.conf, link config), validated first.

    A run layer that sets an operator-only key (an endpoint, a secret, a file, an executable,
    the promotion gate) is rejected, naming the layer and the key.
    """
    layer = Layer(name, values or {}, default_source=source)
    problems = _layer_problems(layer, file=source)
    if name in RUN_LAYERS:
        problems += operator_only_problems(PositionedDocument(file=source, data=layer.values), name)
    if problems:
        raise SpecError(problems)
    return layer


def _layer_problems(layer: Layer, *, file: str) -> list[Problem]:
    problems = validate_data(layer.values, schemas.STAGE_CONFIG, file=file)
    if layer.name == ENVIRONMENT:
        # Positions mean nothing for the environment; point at the variable instead.
        return [
            Problem(f"env:{ENV_PREFIX}{'__'.join(p.path.split('.')).upper()}", 1, 1, p.path, p.message)
            for p in problems
        ]
    return problems
