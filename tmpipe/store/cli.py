"""``tmpipe webui``: serve the embedded store over the WebUI API, and manage symbols and links."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tmpipe.cli_args import exit_with_error, json_object_arg
from tmpipe.errors import StoreError, TmpipeError
from tmpipe.store.auth import TOKEN_ENV, read_token, server_token
from tmpipe.store.factory import embedded_store_path
from tmpipe.store.models import LinkUpdate, SymbolUpdate
from tmpipe.symbols import validate_dag_id, validate_symbol

URL_OPTION = click.option("--url", default=None, help="WebUI base URL; default: the embedded store under TMPIPE_HOME.")
TOKEN_FILE_OPTION = click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"File holding the API token (default: the {TOKEN_ENV} environment variable).",
)
DEFAULT_DAG_ID = "trademaster_autogen_pipeline_workflow"


def _store(url: str | None, token_file: Path | None):
    """The server at ``url`` (sent the token the pipeline's client sends), else the embedded store."""
    if url:
        from tmpipe.store.http import HttpArtifactStore

        return HttpArtifactStore(url, token=read_token(token_file))
    from tmpipe.store.sqlite import SqliteArtifactStore

    return SqliteArtifactStore(embedded_store_path())


@click.group()
def webui() -> None:
    """The WebUI artifacts store."""


@webui.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--db", type=click.Path(path_type=Path), default=None, help="SQLite file (default: TMPIPE_HOME/webui/webui.db).")
@TOKEN_FILE_OPTION
@click.option("--insecure", is_flag=True, help="Accept anonymous requests (no token); prints a warning.")
@click.option("--max-body-mb", type=click.IntRange(min=1), default=10, show_default=True, help="Largest request body, in MiB.")
def serve(host: str, port: int, db: Path | None, token_file: Path | None, insecure: bool, max_body_mb: int) -> None:
    """Serve the embedded store over the WebUI HTTP API (OpenAPI at /openapi.json).

    Every route but /api/health and /openapi.json needs the bearer token; the server does not
    start without one unless told --insecure.
    """
    import uvicorn

    from tmpipe.store.server import create_app
    from tmpipe.store.sqlite import SqliteArtifactStore

    token = None
    if insecure:
        click.echo(f"WARNING: --insecure: anyone who can reach {host}:{port} can read and write the store", err=True)
    else:
        try:
            token = server_token(token_file)
        except TmpipeError as exc:
            exit_with_error(exc)
    app = create_app(SqliteArtifactStore(db or embedded_store_path()), token=token, max_body_bytes=max_body_mb * 1024 * 1024)
    uvicorn.run(app, host=host, port=port, log_level="warning")


DAG_ID_OPTION = click.option("--dag-id", default=None, help=f"The DAG the link is to (default: {DEFAULT_DAG_ID}).")


@webui.command("add-symbol")
@click.argument("symbol")
@click.option("--priority", default=100, show_default=True, type=int, help="Lower runs first.")
@click.option("--disabled", is_flag=True)
@click.option("--link/--no-link", default=True, show_default=True, help="Also link it to the DAG (--dag-id).")
@DAG_ID_OPTION
@click.option("--config", "config_json", default=None, help="Link config JSON or @file (validated against the stage config schema).")
@click.option("--notes", default=None)
@URL_OPTION
@TOKEN_FILE_OPTION
def add_symbol(
    symbol: str,
    priority: int,
    disabled: bool,
    link: bool,
    dag_id: str | None,
    config_json: str | None,
    notes: str | None,
    url: str | None,
    token_file: Path | None,
) -> None:
    """Add a symbol and by default its link to a DAG.

    A symbol that exists already keeps its priority and state; its link is added, or replaced.
    """
    from tmpipe.config.layers import checked_layer

    config = json_object_arg(config_json, "--config")
    dag_id = dag_id or DEFAULT_DAG_ID
    try:
        validate_symbol(symbol)
        validate_dag_id(dag_id)
        checked_layer("webui link config", config, source="--config")
        store = _store(url, token_file)
        existed = False
        try:
            store.add_symbol(symbol, priority=priority, enabled=not disabled)
        except StoreError as exc:
            if not (link and exc.status == 409):
                raise
            existed = True
        if link:
            store.add_link(symbol, dag_id, config=config, notes=notes)
    except TmpipeError as exc:
        exit_with_error(exc)
    if existed:
        click.echo(f"linked {symbol} to {dag_id} (the symbol existed; its priority and state are unchanged)")
    else:
        click.echo(f"added {symbol}; linked {symbol} to {dag_id}" if link else f"added {symbol}")


@webui.command()
@click.argument("symbol")
@DAG_ID_OPTION
@URL_OPTION
@TOKEN_FILE_OPTION
def enable(symbol: str, dag_id: str | None, url: str | None, token_file: Path | None) -> None:
    """Enable a symbol, or with --dag-id activate its link to that DAG."""
    _set_state(symbol, dag_id, True, url, token_file)


@webui.command()
@click.argument("symbol")
@DAG_ID_OPTION
@URL_OPTION
@TOKEN_FILE_OPTION
def disable(symbol: str, dag_id: str | None, url: str | None, token_file: Path | None) -> None:
    """Disable a symbol (no DAG selects it), or with --dag-id deactivate its link to that DAG; nothing is deleted."""
    _set_state(symbol, dag_id, False, url, token_file)


def _set_state(symbol: str, dag_id: str | None, on: bool, url: str | None, token_file: Path | None) -> None:
    try:
        validate_symbol(symbol)
        store = _store(url, token_file)
        if dag_id is None:
            store.update_symbol(symbol, SymbolUpdate(enabled=on))
        else:
            store.update_link(symbol, validate_dag_id(dag_id), LinkUpdate(is_active=on))
    except TmpipeError as exc:
        exit_with_error(exc)
    state = "enabled" if on else "disabled"
    click.echo(f"{state} {symbol}" if dag_id is None else f"{state} the link from {symbol} to {dag_id}")


@webui.command()
@click.argument("symbol")
@DAG_ID_OPTION
@URL_OPTION
@TOKEN_FILE_OPTION
def remove(symbol: str, dag_id: str | None, url: str | None, token_file: Path | None) -> None:
    """Delete a symbol and its links (its artifacts stay), or with --dag-id only its link to that DAG."""
    try:
        validate_symbol(symbol)
        store = _store(url, token_file)
        if dag_id is None:
            store.remove_symbol(symbol)
        else:
            store.remove_link(symbol, validate_dag_id(dag_id))
    except TmpipeError as exc:
        exit_with_error(exc)
    click.echo(f"removed {symbol} and its links (its artifacts stay)" if dag_id is None else f"removed the link from {symbol} to {dag_id}")


@webui.command("list")
@URL_OPTION
@TOKEN_FILE_OPTION
def list_symbols(url: str | None, token_file: Path | None) -> None:
    """List symbols and their links."""
    try:
        entries = _store(url, token_file).list_workflow_symbols(enabled_only=False)
    except TmpipeError as exc:
        exit_with_error(exc)
    for entry in entries:
        click.echo(json.dumps(entry.model_dump()))


@webui.command()
def openapi() -> None:
    """Print the API contract (OpenAPI JSON) the HTTP client expects."""
    from tmpipe.store.server import create_app
    from tmpipe.store.sqlite import SqliteArtifactStore
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        click.echo(json.dumps(create_app(SqliteArtifactStore(Path(tmp) / "x.db"), token=None).openapi(), indent=2))
