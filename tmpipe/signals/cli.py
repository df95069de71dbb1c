"""``tmpipe signals``: grade persisted signals, list them, report a symbol's track record, backfill one."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click

from tmpipe.cli_args import exit_with_error
from tmpipe.errors import TmpipeError

signals = click.Group("signals", help="Grade persisted signals against what the market did next; report track records.")
SPEC = click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
                    help="Spec YAML (default: dag_specs/trademaster_autogen_pipeline_workflow.yaml).")


def _open(spec_path: Path | None):
    from tmpipe.config.resolver import resolve_shared
    from tmpipe.spec.loader import load_spec
    from tmpipe.store.factory import open_store

    spec = load_spec(spec_path)
    return spec, open_store(resolve_shared(spec).webui)


def _symbols(store, symbol: str | None) -> list[str]:
    from tmpipe.symbols import validate_symbol

    if symbol:
        return [validate_symbol(symbol)]
    return sorted({a.symbol for a in store.list_artifacts(artifact_type="signal")})


def _num(value, pattern: str = "{:+.4f}") -> str:
    return "n/a" if value is None else pattern.format(value)


@signals.command("score")
@click.option("--symbol", default=None, help="Only this symbol (default: every symbol with persisted signals).")
@SPEC
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def score_command(symbol: str | None, spec_path: Path | None, as_json: bool) -> None:
    """Grade every persisted signal whose horizon has elapsed (each once), and log the track record to MLflow."""
    from tmpipe.signals.service import score_symbol

    try:
        spec, store = _open(spec_path)
        scorer = {"dag_id": "tmpipe-cli", "dag_run_id": "cli__" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")}
        results = [score_symbol(spec, sym, store, scored_by=scorer) for sym in _symbols(store, symbol)]
    except TmpipeError as exc:
        exit_with_error(exc)
    if as_json:
        click.echo(json.dumps([{"symbol": r.symbol, "newly_graded": r.newly_graded, "pending": r.pending,
                                "record": r.record, "mlflow_run_id": r.mlflow_run_id} for r in results], indent=2))
        return
    if not results:
        click.echo("no persisted signals to grade")
    for r in results:
        rec = r.record
        click.echo(f"{r.symbol}: graded {r.newly_graded} new, {r.pending} waiting for their horizon; "
                   f"{rec['graded']} graded in all, hit rate {_num(rec['hit_rate'], '{:.3f}')} over {rec['directional']}, "
                   f"IC {_num(rec['ic'], '{:+.3f}')}, following {_num(rec['cumulative_pnl'])} vs buy-and-hold "
                   f"{_num(rec['buy_and_hold'])}")


@signals.command("list")
@click.option("--symbol", default=None, help="Only this symbol.")
@SPEC
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(symbol: str | None, spec_path: Path | None, as_json: bool) -> None:
    """Persisted signals, newest bar first, with their grade when they have one."""
    from tmpipe.signals.service import graded_signal_id

    try:
        _, store = _open(spec_path)
        rows = []
        for sym in _symbols(store, symbol):
            scores = {graded_signal_id(a): a.content for a in store.list_artifacts(symbol=sym, artifact_type="signal_score")}
            for a in store.list_artifacts(symbol=sym, artifact_type="signal"):
                score = scores.get(a.id)
                rows.append({"symbol": sym, "dag_run_id": a.dag_run_id, "as_of": a.content.get("as_of"),
                             "action": a.content["action"], "confidence": a.content["confidence"],
                             "review_status": a.content["review_status"], "graded": score is not None,
                             "forward_return": score and score["forward_return"],
                             "direction_right": score and score["direction_right"], "pnl": score and score["pnl"]})
    except TmpipeError as exc:
        exit_with_error(exc)
    rows.sort(key=lambda r: (r["symbol"], r["as_of"] or ""), reverse=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="signals")
    for column in ("symbol", "as of", "action", "confidence", "status", "forward return", "right", "P&L", "DAG run"):
        table.add_column(column, overflow="fold")
    for r in rows:
        right = "" if not r["graded"] else {True: "yes", False: "no", None: "-"}[r["direction_right"]]
        table.add_row(r["symbol"], r["as_of"] or "", r["action"], f"{r['confidence']:.2f}", r["review_status"],
                      _num(r["forward_return"]) if r["graded"] else "pending", right,
                      _num(r["pnl"]) if r["graded"] else "", r["dag_run_id"])
    Console(width=200).print(table)


@signals.command("report")
@click.option("--symbol", required=True, help="The symbol.")
@SPEC
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the PNG (default: TMPIPE_HOME/reports).")
@click.option("--json", "as_json", is_flag=True, help="Print the track record as JSON.")
def report_command(symbol: str, spec_path: Path | None, out_dir: Path | None, as_json: bool) -> None:
    """The symbol's track record (a table) and a PNG of following its graded signals against buy-and-hold."""
    from tmpipe.config.resolver import resolve
    from tmpipe.home import tmpipe_home
    from tmpipe.signals.report import plot_record
    from tmpipe.signals.scoring import track_record
    from tmpipe.signals.service import graded_scores, spec_window

    try:
        spec, store = _open(spec_path)
        (sym,) = _symbols(store, symbol)
        scores = graded_scores(store, sym)
        record = track_record(scores, window=spec_window(resolve(spec, sym)))
    except TmpipeError as exc:
        exit_with_error(exc)
    if not scores:
        raise click.ClickException(f"{sym}: no graded signals yet; run `tmpipe signals score --symbol {sym}` "
                                   f"(or `tmpipe signals backfill --symbol {sym}` for a history)")
    png = plot_record(scores, (out_dir or tmpipe_home() / "reports") / f"{sym}_signals.png",
                      title=f"{sym}: following {record['graded']} graded signals vs buy and hold")
    if as_json:
        click.echo(json.dumps({**record, "png": str(png)}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{sym}: track record ({record['first_as_of']} .. {record['last_as_of']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    shown = [("graded signals", str(record["graded"])), ("directional (BUY/SELL)", str(record["directional"])),
             ("hit rate (coin: 0.5)", _num(record["hit_rate"], "{:.3f}")),
             (f"rolling hit rate (last {record['rolling_window']})", _num(record["rolling_hit_rate"], "{:.3f}")),
             ("Brier score (lower is better)", _num(record["brier"], "{:.4f}")),
             ("IC, signed confidence vs forward return", _num(record["ic"], "{:+.3f}")),
             ("following the signals", _num(record["cumulative_pnl"])),
             ("buy and hold, same bars", _num(record["buy_and_hold"]))]
    for measure, value in shown:
        table.add_row(measure, value)
    Console(width=200).print(table)
    click.echo(f"chart: {png}")


@signals.command("backfill")
@click.option("--symbol", required=True, help="The symbol.")
@SPEC
@click.option("--epochs", type=int, default=None, help="Training epochs (default: the spec's).")
@click.option("--max-signals", type=int, default=None, help="At most this many signals, from the window's start.")
def backfill_command(symbol: str, spec_path: Path | None, epochs: int | None, max_signals: int | None) -> None:
    """Point-in-time signals over the symbol's test window (rules review), then grade them."""
    from tmpipe.signals.backfill import backfill
    from tmpipe.signals.service import score_symbol

    try:
        spec, store = _open(spec_path)
        done = backfill(spec, symbol, store, epochs=epochs, max_signals=max_signals,
                        progress=lambda line: click.echo(line, err=True))
        scorer = {"dag_id": "tmpipe-cli", "dag_run_id": "cli-backfill__" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")}
        scored = score_symbol(spec, done.symbol, store, scored_by=scorer)
    except TmpipeError as exc:
        exit_with_error(exc)
    rec = scored.record
    click.echo(f"{done.symbol}: {done.signals} signals as of {done.first_as_of} .. {done.last_as_of} (model trained on bars "
               f"up to {done.trained_until}; MLflow run {done.mlflow_run_id}); {rec['graded']} graded, hit rate {_num(rec['hit_rate'], '{:.3f}')}, "
               f"following {_num(rec['cumulative_pnl'])} vs buy-and-hold {_num(rec['buy_and_hold'])}. "
               f"See `tmpipe signals report --symbol {done.symbol}`.")
