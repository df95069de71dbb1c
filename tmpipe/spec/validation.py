"""JSON Schema validation that reports every problem at its file position.

jsonschema reports paths, not positions, and its messages for unknown keys do not help a
user who typed ``epoch`` for ``epochs``; this module turns its errors into ``Problem``s
with positions and did-you-mean suggestions.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Iterable, Mapping

from jsonschema.exceptions import ValidationError, best_match

from tmpipe.spec import schemas
from tmpipe.spec.problems import Problem
from tmpipe.spec.yaml_positions import PositionedDocument
from tmpipe.spec.yaml_safety import MAX_DEPTH


def validate_document(doc: PositionedDocument, schema_id: str, *, root: tuple = ()) -> list[Problem]:
    """All schema problems of ``doc.data`` (or of the sub-document at ``root``).

    Non-finite numbers are rejected here, once for every layer: JSON Schema lets NaN pass
    ``minimum``/``maximum`` (every comparison with NaN is false) and infinity pass an open bound.
    """
    instance = doc.data
    for part in root:
        instance = instance[part]
    unsafe, too_deep = _unsafe_values(doc, instance, root)
    if too_deep:
        return unsafe
    flagged = {problem.path for problem in unsafe}
    problems: list[Problem] = list(unsafe)
    for error in schemas.validator(schema_id).iter_errors(instance):
        problems.extend(p for p in _to_problems(doc, error, root) if p.path not in flagged)
    return sorted(set(problems))


def _unsafe_values(doc: PositionedDocument, instance: Any, root: tuple) -> tuple[list[Problem], bool]:
    """NaN and infinities anywhere, or nesting past ``MAX_DEPTH`` (then nothing else is checked)."""
    problems: list[Problem] = []
    stack = [(root, instance, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return [doc.problem(path, f"nested deeper than {MAX_DEPTH} levels")], True
        if isinstance(value, float) and not math.isfinite(value):
            name = "NaN" if math.isnan(value) else ("-" if value < 0 else "") + "infinity"
            problems.append(doc.problem(path, f"{name} is not allowed: numbers must be finite"))
        elif isinstance(value, dict):
            stack.extend(((*path, key), item, depth + 1) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, index), item, depth + 1) for index, item in enumerate(value))
    return problems, False


def _to_problems(doc: PositionedDocument, error: ValidationError, root: tuple) -> Iterable[Problem]:
    path = (*root, *error.absolute_path)
    if error.validator in ("anyOf", "oneOf") and error.context:
        chosen = _best_alternative(error)
        if chosen is None:
            types = " or ".join(repr(t) for t in _branch_types(error))
            yield doc.problem(path, f"{_shown(error.instance)} is not of type {types}")
            return
        yield from _to_problems(doc, chosen, root)
        return
    if error.validator == "type" and tuple(path) in doc.plain_scalars:
        text = doc.plain_scalars[tuple(path)]
        yield doc.problem(path, f"{text!r} is read by YAML as {error.instance!r}, which is not of type "
                                f"{error.validator_value!r}; put it in quotes to keep it as text")
        return
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(_schema(error).get("properties", {}))
        for key in _unexpected_keys(error):
            yield doc.problem((*path, key), _unknown_key_message(key, allowed), key=True)
        return
    if "propertyNames" in error.schema_path:
        yield doc.problem((*path, _instance(error)), _symbol_message(error), key=True)
        return
    if _schema(error).get("$id") == schemas.SYMBOL:
        yield doc.problem(path, _symbol_message(error))
        return
    if error.validator == "required":
        yield doc.problem(path, error.message.replace("property", "key"))
        return
    yield doc.problem(path, _plain(error.message))


def _best_alternative(error: ValidationError) -> ValidationError | None:
    """The most telling error of an anyOf/oneOf: from a branch of the instance's own type.

    Without this, ``{"anyOf": [symbol, {"type": "null"}]}`` reports "'a/b' is not of type
    'null'" instead of why 'a/b' is not a symbol. None when every branch wants another type.
    """
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0], []).append(sub)
    fitting = [sub for subs in branches.values() if not any(_is_type_mismatch(s) for s in subs) for sub in subs]
    return best_match(fitting) if fitting else None


def _is_type_mismatch(error: ValidationError) -> bool:
    return error.validator == "type" and not error.relative_path


def _branch_types(error: ValidationError) -> list[str]:
    types: list[str] = []
    for sub in error.context:
        if _is_type_mismatch(sub):
            value = sub.validator_value
            types += [str(t) for t in (value if isinstance(value, list) else [value]) if t not in types]
    return types


def _schema(error: ValidationError) -> Mapping[str, Any]:
    """The failing subschema: always a mapping for errors a validator raised (the stubs also allow unset)."""
    return error.schema if isinstance(error.schema, Mapping) else {}


def _instance(error: ValidationError) -> Any:
    """The failing value; the stubs type it as possibly unset, which a validator's error never is."""
    return error.instance


def _shown(instance: Any) -> str:
    return _plain(repr(instance))


def _symbol_message(error: ValidationError) -> str:
    if _schema(error).get("$id") == schemas.SYMBOL:
        return f"invalid symbol name {error.instance!r}: {_schema(error)['description']}"
    return f"invalid name {error.instance!r}: {_plain(error.message)}"


def _unexpected_keys(error: ValidationError) -> list[str]:
    known = set(_schema(error).get("properties", {}))
    patterns = [re.compile(p) for p in _schema(error).get("patternProperties", {})]
    return [k for k in _instance(error) if k not in known and not any(p.search(k) for p in patterns)]


def _unknown_key_message(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(allowed)})"
    return f"unknown key '{key}'{hint}"


def _plain(message: str) -> str:
    """Shorten jsonschema's messages that repeat a whole sub-document."""
    return message if len(message) <= 200 else message[:197] + "..."


def validate_data(data: Any, schema_id: str, *, file: str) -> list[Problem]:
    """Validate an in-memory document (conf, env layer) where positions are unknown."""
    return validate_document(PositionedDocument(file=file, data=data), schema_id)
