"""Option parsing and error exits shared by the CLI groups."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from tmpipe.redaction import redact_url_credentials


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


def exit_with_error(exc: Exception) -> None:
    """Print a project error's lines (``FILE:LINE:COL: path: message``) and exit 1, no traceback."""
    for line in redact_url_credentials(str(exc)).splitlines():
        click.echo(line, err=True)
    sys.exit(1)
