"""``tmpipe doctor``: one row per check, exit 1 when any fails."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command()
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None, help="Spec YAML (default: TMPIPE_SPEC, else dag_specs/).")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=5.0, show_default=True, help="Seconds per network check.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of checks.")
def doctor(spec_path: Path | None, timeout: float, as_json: bool) -> None:
    """Check this machine's deployment: spec, TMPIPE_HOME, MLflow, WebUI, LLM endpoint, Airflow settings."""
    from tmpipe.doctor.checks import FAIL, run_checks

    rows = [check.as_dict() for check in run_checks(spec_path, timeout)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="tmpipe doctor")
        for column in ("check", "status", "detail", "what to do"):
            table.add_column(column, overflow="fold")
        colours = {"ok": "green", "warn": "yellow", "fail": "red"}
        for row in rows:
            table.add_row(escape(row["name"]), f"[{colours[row['status']]}]{row['status']}[/]", escape(row["detail"]), escape(row["fix"]))
        Console(width=160).print(table)
    sys.exit(1 if any(row["status"] == FAIL for row in rows) else 0)
