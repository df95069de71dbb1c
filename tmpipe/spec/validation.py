"""JSON Schema validation that reports every problem at its file position.

jsonschema reports paths, not positions, and its messages for unknown keys do not help a
user who typed ``epoch`` for ``epochs``; this module turns its errors into ``Problem``s
with positions and did-you-mean suggestions.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Iterable

from jsonschema.exceptions import ValidationError, best_match

from tmpipe.spec import schemas
from tmpipe.spec.problems import Problem
from tmpipe.spec.yaml_positions import PositionedDocument


def validate_document(doc: PositionedDocument, schema_id: str, *, root: tuple = ()) -> list[Problem]:
    """All schema problems of ``doc.data`` (or of the sub-document at ``root``)."""
    instance = doc.data
    for part in root:
        instance = instance[part]
    problems: list[Problem] = []
    for error in schemas.validator(schema_id).iter_errors(instance):
        problems.extend(_to_problems(doc, error, root))
    return sorted(set(problems))


def _to_problems(doc: PositionedDocument, error: ValidationError, root: tuple) -> Iterable[Problem]:
    path = (*root, *error.absolute_path)
    if error.validator in ("anyOf", "oneOf") and error.context:
        yield from _to_problems(doc, best_match(error.context), root)
        return
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        for key in _unexpected_keys(error):
            yield doc.problem((*path, key), _unknown_key_message(key, allowed), key=True)
        return
    if "propertyNames" in error.schema_path:
        yield doc.problem((*path, error.instance), _symbol_message(error), key=True)
        return
    if error.schema.get("$id") == schemas.SYMBOL:
        yield doc.problem(path, _symbol_message(error))
        return
    if error.validator == "required":
        yield doc.problem(path, error.message.replace("property", "key"))
        return
    yield doc.problem(path, _plain(error.message))


def _symbol_message(error: ValidationError) -> str:
    if error.schema.get("$id") == schemas.SYMBOL:
        return f"invalid symbol name {error.instance!r}: {error.schema['description']}"
    return f"invalid name {error.instance!r}: {_plain(error.message)}"


def _unexpected_keys(error: ValidationError) -> list[str]:
    known = set(error.schema.get("properties", {}))
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    return [k for k in error.instance if k not in known and not any(p.search(k) for p in patterns)]


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
