"""Option parsing shared by the CLI groups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def json_object_arg(value: str | None, what: str) -> dict[str, Any]:
    """A JSON object given inline or as @path."""
    if not value:
        return {}
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise click.BadParameter(f"{what} must be a JSON object")
    return data
