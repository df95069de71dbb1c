"""``tmpipe review``: run the review on saved engine/inference output, verify a saved trace."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tmpipe.errors import TmpipeError

review = click.Group("review", help="Review a signal with the AutoGen team; verify reasoning traces.")


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{path}: cannot read {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise click.ClickException(f"{path}: {what} must be a JSON object")
    return data


def review_section(spec_path: Path | None, symbol: str) -> tuple[dict, str]:
    """The resolved review section and a note on where it came from.

    With a spec, tmpipe.config resolves the symbol's layers (schema, spec defaults, env, spec
    symbols); without one, the schema defaults are used.
    """
    from tmpipe.review.schemas import fill_defaults

    if spec_path is None:
        return fill_defaults({}), "schema defaults"
    try:
        from tmpipe.config.resolver import resolve
        from tmpipe.spec.loader import load_spec
    except ImportError:  # the config resolver is not installed: read defaults.review directly
        import yaml

        document = yaml.safe_load(spec_path.read_text(encoding="utf-8")) or {}
        return fill_defaults((document.get("defaults") or {}).get("review") or {}), f"{spec_path} defaults.review"
    return fill_defaults(resolve(load_spec(spec_path), symbol).section("review")), f"{spec_path} resolved for {symbol}"


@review.command("run")
@click.option("--evidence", "evidence_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An evidence pack JSON (as build_evidence writes it).")
@click.option("--engine-result", "engine_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The JSON that `tmpipe engine train-backtest --json` prints.")
@click.option("--inference", "inference_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The JSON that `tmpipe engine infer --json` prints (default: the backtest's last action).")
@click.option("--spec", "spec_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Spec YAML whose review section to use (default: schema defaults).")
@click.option("--symbol", default=None, help="Symbol (default: the one in the evidence or engine result).")
@click.option("--notes", default=None, help="Outside text to quote in the evidence (e.g. a link-config note).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for signal.json and trace.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the signal as JSON.")
def run_command(evidence_path: Path | None, engine_path: Path | None, inference_path: Path | None,
                spec_path: Path | None, symbol: str | None, notes: str | None, out_dir: Path, as_json: bool) -> None:
    """Review one symbol and write DIR/signal.json and DIR/trace.json."""
    from tmpipe.review.evidence import build_evidence, inference_from_backtest
    from tmpipe.review.reviewer import review_signal

    if (evidence_path is None) == (engine_path is None):
        raise click.UsageError("give exactly one of --evidence or --engine-result")
    if evidence_path is not None and (inference_path or notes):
        raise click.UsageError("--inference and --notes go with --engine-result, not --evidence")
    try:
        if evidence_path is not None:
            evidence = _read_json(evidence_path, "evidence")
            symbol = symbol or evidence.get("symbol")
        else:
            engine_result = _read_json(engine_path, "engine result")
            inference = _read_json(inference_path, "inference result") if inference_path else inference_from_backtest(engine_result)
            symbol = symbol or engine_result.get("symbol")
            lineage = {"data_sha256": (engine_result.get("data_fingerprint") or {}).get("sha256")}
            evidence = build_evidence(engine_result, inference, symbol=symbol, lineage=lineage, notes=notes)
        if not symbol:
            raise click.UsageError("no symbol in the input: give --symbol")
        config, config_source = review_section(spec_path, symbol)
        outcome = review_signal(evidence, config, symbol=symbol)
    except TmpipeError as exc:
        raise click.ClickException(str(exc)) from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "signal.json").write_text(json.dumps(outcome.signal, indent=2) + "\n", encoding="utf-8")
    (out_dir / "trace.json").write_text(json.dumps(outcome.trace, indent=2) + "\n", encoding="utf-8")
    signal = outcome.signal
    if as_json:
        click.echo(json.dumps(signal, indent=2))
        return
    click.echo(f"{symbol}: {signal['action']} (confidence {signal['confidence']:.2f}, {signal['review_status']}) "
               f"by {outcome.trace['reviewer']['label']}")
    click.echo(f"  {signal['rationale']}")
    if signal["fallback_cause"]:
        click.echo(f"  fallback cause: {signal['fallback_cause']['kind']}: {signal['fallback_cause']['detail']}")
    click.echo(f"  config: {config_source}; wrote {out_dir / 'signal.json'} and {out_dir / 'trace.json'}")


@review.command("verify")
@click.argument("trace_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify_command(trace_path: Path) -> None:
    """Exit 0 if TRACE.json is intact (schema and hash chain), else print the problems and exit 1."""
    from tmpipe.review.trace import verify_trace

    try:
        trace = json.loads(trace_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        click.echo(f"{trace_path}: not a JSON trace: {exc}", err=True)
        sys.exit(1)
    result = verify_trace(trace)
    if not result.ok:
        for problem in result.problems:
            click.echo(f"{trace_path}: {problem}", err=True)
        sys.exit(1)
    click.echo(f"ok: {trace_path}: {len(trace['entries'])} entries, head {trace['chain']['head']}")
