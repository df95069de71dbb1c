"""``tmpipe``: validate, render, explain and run the pipeline; serve the WebUI store.

Command names and options are stable: scripts and CI depend on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from tmpipe.cli_args import error_lines, exit_with_error, json_object_arg
from tmpipe.errors import SpecError, TmpipeError
from tmpipe.pipeline.modes import MODES

def _spec_by_path_or_dag_id(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """``--spec`` takes a file, or the dag_id of a spec in the specs folder (TMPIPE_SPECS_DIR, else dag_specs/)."""
    if value is None:
        return None
    from tmpipe.spec.catalog import find_spec

    try:
        return find_spec(value)
    except SpecError as exc:
        exit_with_error(exc)


SPEC_OPTION = click.option(
    "--spec", "spec_path", default=None, callback=_spec_by_path_or_dag_id, metavar="PATH|DAG_ID",
    help="Spec YAML, or the dag_id of a spec in the specs folder (default: dag_specs/trademaster_autogen_pipeline_workflow.yaml).",
)


class OneLineErrors(click.Group):
    """Any error a command lets through becomes one line on stderr and exit 1.

    Commands report the errors they expect themselves; this catches the rest (a server that is
    down, a file that cannot be read, a bug), so a user never gets a traceback unless they
    ask for it with ``--debug``.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            for line in error_lines(exc):
                click.echo(line, err=True)
            ctx.exit(1)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tmpipe")
@click.option("--debug", is_flag=True, envvar="TMPIPE_DEBUG", help="Show the traceback of an unexpected error.")
def main(debug: bool) -> None:
    """YAML-driven Airflow pipeline: TradeMaster training, AutoGen review, MLflow lineage."""


def _existing_or_dag_id(path: Path) -> Path:
    """A path as given, or the spec whose dag_id it is when no such file or folder exists."""
    if path.exists():
        return path
    from tmpipe.spec.catalog import find_spec

    try:
        return find_spec(str(path))
    except SpecError:
        return path  # validate reports it as "no such file"


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Validate specs (*.yaml), by path or dag_id, and WebUI link configs (*.json); default: dag_specs/."""
    from tmpipe.spec.loader import validate_paths

    targets = [_existing_or_dag_id(path) for path in paths] or [Path("dag_specs")]
    problems = validate_paths(targets)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        sys.exit(1)
    click.echo(f"ok: {', '.join(str(t) for t in targets)}", err=True)


SCHEMA_NAMES = {"pipeline_spec": "urn:tmpipe:pipeline_spec", "stage_config": "urn:tmpipe:stage_config", "dag_run_conf": "urn:tmpipe:dag_run_conf"}


@main.command()
@click.argument("name", type=click.Choice(sorted(SCHEMA_NAMES)), default="pipeline_spec")
def schema(name: str) -> None:
    """Print a JSON Schema as one self-contained document (for editors and check-jsonschema).

    The default is the spec's; stage_config is a WebUI link config's, dag_run_conf a run's.
    """
    from tmpipe.spec.schema_bundle import bundle_text

    click.echo(bundle_text(SCHEMA_NAMES[name]), nl=False)


@main.command()
@SPEC_OPTION
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def render(spec_path: Path | None, fmt: str) -> None:
    """Print the dag-factory config the spec generates."""
    from tmpipe.generator import dag_factory_config
    from tmpipe.spec.loader import load_spec

    try:
        config = dag_factory_config(load_spec(spec_path))
    except SpecError as exc:
        exit_with_error(exc)
    click.echo(json.dumps(config, indent=2) if fmt == "json" else yaml.safe_dump(config, sort_keys=False, width=120))


@main.command()
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
def diff(old: str, new: str) -> None:
    """What changes from spec OLD to spec NEW (paths or dag_ids): the DAG, the policy, each symbol's config.

    Exit 0 when nothing changes, 1 when something does (like diff(1)), 2 when a spec does not load.
    """
    from tmpipe.spec.catalog import find_spec
    from tmpipe.spec.loader import load_spec
    from tmpipe.spec_diff import spec_diff

    try:
        lines = spec_diff(load_spec(find_spec(old)), load_spec(find_spec(new)))
    except TmpipeError as exc:
        for line in error_lines(exc):
            click.echo(line, err=True)
        sys.exit(2)
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo(f"no change: {old} and {new} generate the same DAG and symbol configs", err=True)
    sys.exit(1 if lines else 0)


@main.command()
@click.option("--symbol", required=True, help="Symbol to resolve.")
@SPEC_OPTION
@click.option("--conf", "conf_json", default=None, help="dag_run.conf as JSON or @file (its 'config' is layer 5).")
@click.option("--link-config", "link_json", default=None, help="WebUI link config as JSON or @file (layer 6).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def explain(symbol: str, spec_path: Path | None, conf_json: str | None, link_json: str | None, as_json: bool) -> None:
    """Show a symbol's resolved config and which layer set each key."""
    from tmpipe.config.resolver import resolve
    from tmpipe.pipeline.context import check_conf
    from tmpipe.redaction import redact_urls_in
    from tmpipe.spec.loader import load_spec
    from tmpipe.spec.trust import is_operator_only

    conf = json_object_arg(conf_json, "--conf")
    link_config = json_object_arg(link_json, "--link-config")
    try:
        spec = load_spec(spec_path)
        check_conf(conf)
        resolved = resolve(spec, symbol, conf_config=conf.get("config"), link_config=link_config, link_source="--link-config")
    except TmpipeError as exc:
        exit_with_error(exc)
    _warn_unless_own_data(spec, resolved)
    values = redact_urls_in(resolved.values)
    rows = [
        {"key": key, "value": _lookup(values, key), "layer": origin.layer, "source": origin.source,
         "operator_only": is_operator_only(key)}
        for key, origin in sorted(resolved.provenance.items())
    ]
    if as_json:
        click.echo(json.dumps({"symbol": symbol, "config": values, "provenance": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{symbol}: resolved config (set by: operator = spec or environment only)")
    for column in ("key", "value", "layer", "source", "set by"):
        table.add_column(column, overflow="fold")
    for row in rows:
        who = "operator" if row["operator_only"] else "operator or run"
        table.add_row(row["key"], json.dumps(row["value"]), row["layer"], row["source"] or "", who)
    Console(width=200).print(table)


def _warn_unless_own_data(spec, resolved) -> None:
    """The line a run would fail this symbol with, when its data does not name it (stderr)."""
    from tmpipe.config.symbol_data import check_symbol_data
    from tmpipe.errors import DataError

    try:
        check_symbol_data(spec, resolved)
    except DataError as exc:
        click.echo(f"warning: a run would fail: {exc}", err=True)


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        values = values[part]
    return values


@contextlib.contextmanager
def _stdout_kept_for_the_result() -> Iterator[None]:
    """While the run lasts, whatever is written to stdout goes to stderr: Airflow's log lines
    (a task process that died), a task's prints, its task processes' output.
    Redirected at the descriptor, since Airflow's handlers keep the stream they were configured
    with; stdout then carries the run's result alone, so ``--json`` parses."""
    sys.stdout.flush()
    result_stdout = None
    try:
        result_stdout = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no stdout or no stderr descriptor: nothing to keep apart
        pass
    try:
        yield
    finally:
        if result_stdout is not None:
            sys.stdout.flush()
            os.dup2(result_stdout, 1)
            os.close(result_stdout)


@main.command()
@SPEC_OPTION
@click.option("--symbols", default=None, help="Comma-separated symbols (default: the WebUI's enabled symbols).")
@click.option("--mode", type=click.Choice(MODES), default=None)
@click.option("--conf", "conf_json", default=None, help="Extra dag_run.conf as JSON or @file.")
@click.option("--logical-date", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]), default=None, help="Logical date (default now); the same date again re-runs that DAG run.")
@click.option("--replay-llm", "replay_llm", default=None, metavar="DAG_RUN_ID",
              help="Replay that DAG run's recorded LLM requests offline (review.model_client.replay_dag_run_id).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def run(spec_path: Path | None, symbols: str | None, mode: str | None, conf_json: str | None, logical_date,
        replay_llm: str | None, as_json: bool) -> None:
    """One local DAG run in-process on the embedded defaults (TMPIPE_HOME, default ./.tmpipe)."""
    from tmpipe.config.resolver import resolve_shared
    from tmpipe.pipeline.context import check_conf
    from tmpipe.pipeline.summary import render_table
    from tmpipe.redaction import redact_url_credentials
    from tmpipe.runner import run_local
    from tmpipe.spec.loader import default_spec_path, load_spec

    conf = json_object_arg(conf_json, "--conf")
    if symbols:
        conf["symbols"] = [s.strip() for s in symbols.split(",") if s.strip()]
    if mode:
        conf["mode"] = mode
    if replay_llm:
        review = conf.setdefault("config", {}).setdefault("review", {})
        review.setdefault("model_client", {})["replay_dag_run_id"] = replay_llm
    path = spec_path or default_spec_path()
    try:
        check_conf(conf)
        resolve_shared(load_spec(path), conf_config=conf.get("config"))  # a run layer's operator-only keys fail here
    except TmpipeError as exc:
        exit_with_error(exc)
    if logical_date is not None and logical_date.tzinfo is None:
        logical_date = logical_date.replace(tzinfo=timezone.utc)
    try:
        with _stdout_kept_for_the_result():
            outcome = run_local(path, conf, logical_date)
    except KeyboardInterrupt:
        click.echo("interrupted: the run stopped unfinished; a task still running stops within about a second "
                   "(TMPIPE_HOME/logs/aborted-tasks.log)", err=True)
        _exit_after_run(130)
    tracking_uri = redact_url_credentials(outcome.tracking_uri or "") or None
    if as_json:
        click.echo(json.dumps({"dag_run_id": outcome.dag_run_id, "state": outcome.state, "tracking_uri": tracking_uri, **outcome.summary}, indent=2))
    else:
        click.echo(render_table(outcome.summary))
        click.echo(f"dag run {outcome.dag_run_id}: {outcome.state}; MLflow: {tracking_uri}")
    _exit_after_run(0 if outcome.ok else 1)


def _exit_after_run(code: int) -> NoReturn:
    """End the process without the interpreter's final full collections over every object a run
    leaves (about 4 s of CPU): frozen objects are skipped. Exit handlers still run."""
    import gc

    gc.freeze()
    sys.exit(code)


from tmpipe.doctor.cli import doctor  # noqa: E402 - subcommand groups register after main
from tmpipe.engine.cli import engine  # noqa: E402
from tmpipe.review.cli import review  # noqa: E402
from tmpipe.signals.cli import signals  # noqa: E402
from tmpipe.store.cli import webui  # noqa: E402

main.add_command(doctor)
main.add_command(engine)
main.add_command(review)
main.add_command(signals)
main.add_command(webui)
