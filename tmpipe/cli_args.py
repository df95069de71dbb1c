"""Option parsing and error exits shared by the CLI groups."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from tmpipe.errors import SpecError
from tmpipe.redaction import redact_url_credentials
from tmpipe.spec.yaml_safety import MAX_DOCUMENT_BYTES


def json_object_arg(value: str | None, what: str) -> dict[str, Any]:
    """A JSON object given inline or as @path; any problem is one ``Error:`` line."""
    if not value:
        return {}
    text = _read_arg_file(Path(value[1:]), what) if value.startswith("@") else value
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise click.ClickException(f"{what} is nested too deeply") from exc
    if not isinstance(data, dict):
        raise click.ClickException(f"{what} must be a JSON object")
    return data


def _read_arg_file(path: Path, what: str) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise click.ClickException(f"{what}: cannot read {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise click.ClickException(f"{what}: {path} is larger than the limit of {MAX_DOCUMENT_BYTES:,} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{what}: {path} is not UTF-8 text (byte offset {exc.start})") from exc


def exit_with_error(exc: Exception) -> NoReturn:
    """Print a project error's lines (``FILE:LINE:COL: path: message``) and exit 1, no traceback."""
    for line in redact_url_credentials(str(exc)).splitlines():
        click.echo(line, err=True)
    sys.exit(1)


def error_lines(exc: BaseException) -> list[str]:
    """What a user sees for ``exc``: a spec error's problem lines, else one ``Error:`` line.

    Credentials inside URLs are masked: an unexpected error may quote a configured endpoint.
    """
    return [redact_url_credentials(line) for line in _error_lines(exc)]


def _error_lines(exc: BaseException) -> list[str]:
    if isinstance(exc, SpecError):
        return [str(problem) for problem in exc.problems] or ["Error: invalid input"]
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or text}"
    if type(exc).__module__.startswith("tmpipe") or isinstance(exc, OSError):
        return [f"Error: {text or type(exc).__name__}"]
    if type(exc).__module__.startswith("httpx"):
        return [f"Error: cannot reach the server: {text or type(exc).__name__}"]
    detail = f": {text}" if text else ""
    return [f"Error: unexpected {type(exc).__name__}{detail} (run with --debug for the traceback)"]
