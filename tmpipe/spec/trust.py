"""Who may set what: operator-only keys and secret environment variable names.

The section schemas are the single source of truth: a property marked
``"x-tmpipe-operator-only": true`` names an endpoint, a secret, a file, an executable or the
promotion gate, and only operator layers (schema defaults, the spec, the environment) may set
it; ``"x-tmpipe-secret-env": true`` marks the name of an environment variable that holds a
secret, which must fully match the spec's ``security.secret_env_pattern`` in every layer.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Iterator

from tmpipe.spec import schemas
from tmpipe.spec.problems import Problem
from tmpipe.spec.yaml_positions import PositionedDocument

OPERATOR_ONLY = "x-tmpipe-operator-only"
SECRET_ENV = "x-tmpipe-secret-env"
OPERATOR_LAYERS = "spec or environment"
DEFAULT_SECRET_ENV_PATTERN = schemas.fill_defaults(schemas.PIPELINE_SPEC)["security"]["secret_env_pattern"]


@cache
def marked_paths(marker: str) -> frozenset[tuple[str, ...]]:
    """Stage-config paths (``("webui", "base_url")``) whose schema carries ``marker``."""
    return frozenset(_walk(schemas.schema(schemas.STAGE_CONFIG), (), marker))


def _walk(node: dict[str, Any], path: tuple[str, ...], marker: str) -> Iterator[tuple[str, ...]]:
    node = schemas.resolve_ref(node)
    if node.get(marker) is True:
        yield path
    for key, child in node.get("properties", {}).items():
        yield from _walk(child, (*path, key), marker)


def is_operator_only(dotted_key: str) -> bool:
    """True for a key that is, or lies under, an operator-only property."""
    parts = tuple(dotted_key.split("."))
    return any(parts[: len(path)] == path for path in marked_paths(OPERATOR_ONLY))


def operator_only_problems(doc: PositionedDocument, layer: str) -> list[Problem]:
    """One problem per operator-only key that a run layer (``layer``) tries to set."""
    problems = []
    for path in sorted(marked_paths(OPERATOR_ONLY)):
        found, value = _lookup(doc.data, path)
        if not found:
            continue
        for leaf in _leaves(value, path):
            problems.append(doc.problem(leaf, f"set only by the operator ({OPERATOR_LAYERS}), not by the {layer}", key=True))
    return problems


def secret_env_problem(value: Any, pattern: str) -> str | None:
    """Why ``value`` may not name a secret environment variable, or None when it may."""
    if value is None or not isinstance(value, str) or re.fullmatch(pattern, value):
        return None
    return f"{value!r} does not match security.secret_env_pattern {pattern!r}"


def secret_env_values(values: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every secret env var name set in a (partial or resolved) stage config."""
    for path in sorted(marked_paths(SECRET_ENV)):
        found, value = _lookup(values, path)
        if found:
            yield path, value


def spec_secret_env_problems(doc: PositionedDocument) -> list[Problem]:
    """``tmpipe validate``: secret env var names in the spec's defaults and symbols, with positions."""
    pattern = (doc.data.get("security") or {}).get("secret_env_pattern", DEFAULT_SECRET_ENV_PATTERN)
    layers = [("defaults",)] + [("symbols", symbol) for symbol in doc.data.get("symbols") or {}]
    problems = []
    for prefix in layers:
        _, values = _lookup(doc.data, prefix)
        for path, value in secret_env_values(values or {}):
            message = secret_env_problem(value, pattern)
            if message:
                problems.append(doc.problem((*prefix, *path), message))
    return problems


def _lookup(data: Any, path: tuple) -> tuple[bool, Any]:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False, None
        data = data[part]
    return True, data


def _leaves(value: Any, path: tuple) -> list[tuple]:
    if isinstance(value, dict) and value:
        return [leaf for key, child in value.items() for leaf in _leaves(child, (*path, key))]
    return [path]
