"""The six configuration layers of a symbol, lowest precedence first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from tmpipe.errors import SpecError
from tmpipe.spec import schemas
from tmpipe.spec.problems import Problem
from tmpipe.spec.trust import operator_only_problems
from tmpipe.spec.validation import validate_data
from tmpipe.spec.yaml_errors import is_syntax_error
from tmpipe.spec.yaml_positions import EMPTY_DOCUMENT, PositionedDocument, load_positioned

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

    Values are read as YAML (safely, within the spec loader's limits), so numbers, booleans,
    null and lists keep their type - except where the schema wants text: there the value
    stays the text as written (``TMPIPE__MLFLOW__EXPERIMENT=2024-01-01`` is a name, not a date).
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
        value, problem = _env_value(name, path, environ[name])
        clash = None if problem else _set_path(values, path, value)
        if clash:
            problem = Problem(f"env:{name}", 1, 1, ".".join(path),
                              f"conflicts with {ENV_PREFIX}{'__'.join(clash).upper()}: a key is either a value or a section")
        if problem:
            problems.append(problem)
            continue
        sources[path] = f"env:{name}"
    layer = Layer(ENVIRONMENT, values, sources)
    problems += _layer_problems(layer, file="environment")
    if problems:
        raise SpecError(problems)
    return layer


def _env_value(name: str, path: tuple[str, ...], text: str) -> tuple[Any, Problem | None]:
    if not text.strip():
        return None, None
    doc = load_positioned(text, f"env:{name}")
    if doc.problems and all(is_syntax_error(p) or p.message == EMPTY_DOCUMENT for p in doc.problems):
        # Not YAML (or only a comment): plain text where the schema wants text, else as before.
        return (text if is_syntax_error(doc.problems[0]) or _wants_text(path, None) else None), None
    if doc.problems:
        first = doc.problems[0]
        return None, Problem(first.file, first.line, first.column, ".".join(path), first.message)
    if _wants_text(path, doc.data):
        return text, None
    return doc.data, None


def _wants_text(path: tuple[str, ...], value: Any) -> bool:
    """Whether the schema types this key as a string and ``value`` is none of its types."""
    node: dict[str, Any] = schemas.schema(schemas.STAGE_CONFIG)
    for part in path:
        node = schemas.resolve_ref(node).get("properties", {}).get(part)
        if node is None:
            return False
    types = schemas.resolve_ref(node).get("type")
    types = types if isinstance(types, list) else [types]
    json_type = {bool: "boolean", int: "integer", float: "number", type(None): "null", list: "array", dict: "object"}
    actual = json_type.get(type(value))
    return "string" in types and actual not in types and not (actual == "integer" and "number" in types)


def _set_path(values: dict[str, Any], path: tuple[str, ...], value: Any) -> tuple[str, ...] | None:
    """Put ``value`` at ``path``; on a clash with a value already set, the clashing path."""
    node = values
    for depth, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return path[: depth + 1]
        node = child
    if isinstance(node.get(path[-1]), dict):
        return (*path, *_first_leaf(node[path[-1]]))
    node[path[-1]] = value
    return None


def _first_leaf(tree: dict[str, Any]) -> tuple[str, ...]:
    key, value = next(iter(tree.items()))
    return (key, *_first_leaf(value)) if isinstance(value, dict) and value else (key,)


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
