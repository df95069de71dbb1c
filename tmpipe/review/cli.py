"""``tmpipe review``: run the review on saved engine/inference output, verify a saved trace."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tmpipe.errors import ReviewError, TmpipeError
from tmpipe.store.cli import TOKEN_FILE_OPTION

if TYPE_CHECKING:
    from tmpipe.config.sections import ReviewConfig

review = click.Group("review", help="Review a signal with the AutoGen team; verify reasoning traces.")


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{path}: cannot read {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise click.ClickException(f"{path}: {what} must be a JSON object")
    return data


def review_section(spec_path: Path | None, symbol: str) -> tuple[ReviewConfig, str]:
    """The resolved review section and a note on where it came from.

    With a spec, tmpipe.config resolves the symbol's layers (schema, spec defaults, env, spec
    symbols); without one, the schema defaults are used.
    """
    from tmpipe.config.sections import ReviewConfig

    if spec_path is None:
        return ReviewConfig.from_values({}), "schema defaults"
    from tmpipe.config.resolver import resolve
    from tmpipe.spec.loader import load_spec

    return resolve(load_spec(spec_path), symbol).review, f"{spec_path} resolved for {symbol}"


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
              help="Directory for evidence.json, signal.json, trace.json and llm_recording.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the signal as JSON.")
def run_command(evidence_path: Path | None, engine_path: Path | None, inference_path: Path | None,
                spec_path: Path | None, symbol: str | None, notes: str | None, out_dir: Path, as_json: bool) -> None:
    """Review one symbol and write DIR/evidence.json, DIR/signal.json, DIR/trace.json and DIR/llm_recording.json.

    The trace references DIR/evidence.json (the pack's canonical bytes) by sha256; the recording is replayable.
    """
    from tmpipe.review.evidence import build_evidence, inference_from_backtest
    from tmpipe.review.evidence_ref import EVIDENCE_FILE, evidence_bytes
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
            assert engine_path is not None  # exactly one of the two, checked above
            engine_result = _read_json(engine_path, "engine result")
            inference = _read_json(inference_path, "inference result") if inference_path else inference_from_backtest(engine_result)
            symbol = symbol or engine_result.get("symbol")
            if not symbol:
                raise click.UsageError("no symbol in the input: give --symbol")
            lineage = {"data_sha256": (engine_result.get("data_fingerprint") or {}).get("sha256")}
            evidence = build_evidence(engine_result, inference, symbol=symbol, lineage=lineage, notes=notes)
        if not symbol:
            raise click.UsageError("no symbol in the input: give --symbol")
        config, config_source = review_section(spec_path, symbol)
        outcome = review_signal(evidence, config, symbol=symbol, evidence_uri=EVIDENCE_FILE)
    except TmpipeError as exc:
        raise click.ClickException(str(exc)) from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / EVIDENCE_FILE).write_bytes(evidence_bytes(evidence))
    (out_dir / "signal.json").write_text(json.dumps(outcome.signal, indent=2) + "\n", encoding="utf-8")
    (out_dir / "trace.json").write_text(json.dumps(outcome.trace, indent=2) + "\n", encoding="utf-8")
    if outcome.recording is not None:
        (out_dir / "llm_recording.json").write_text(json.dumps(outcome.recording, indent=2) + "\n", encoding="utf-8")
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
@click.option("--signal", "signal_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The signal JSON of this review: its trace_head_sha256 and decision must match the trace.")
@click.option("--mlflow-run", "mlflow_run", default=None, help="The symbol's MLflow run id: its tag tmpipe.trace_head_sha256 must match.")
@click.option("--tracking-uri", default=None,
              help="MLflow tracking URI for --mlflow-run (default: $MLFLOW_TRACKING_URI, else the embedded store under TMPIPE_HOME).")
@click.option("--webui-artifact", "webui_artifact", type=int, default=None,
              help="A WebUI signal or llm artifact id of this review: its recorded head must match.")
@click.option("--url", default=None, help="WebUI base URL for --webui-artifact (default: the embedded store under TMPIPE_HOME).")
@TOKEN_FILE_OPTION
def verify_command(trace_path: Path, signal_path: Path | None, mlflow_run: str | None, tracking_uri: str | None,
                   webui_artifact: int | None, url: str | None, token_file: Path | None) -> None:
    """Exit 0 if TRACE.json is intact, else print what differs and exit 1.

    Intact: the schema holds, the hash chain recomputes, the head matches every copy named by
    --signal, --mlflow-run and --webui-artifact, when TMPIPE_TRACE_HMAC_KEY is set the trace is
    signed with that key, and the evidence pack it references has the referenced size and sha256
    (a file beside the trace always; one in an MLflow run when --mlflow-run says which store to read).
    """
    from tmpipe.review.anchors import verify_anchored
    from tmpipe.review.trace import hmac_key

    if (tracking_uri and mlflow_run is None) or (url and webui_artifact is None):
        raise click.UsageError("--tracking-uri goes with --mlflow-run, --url with --webui-artifact")
    try:
        trace = json.loads(trace_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        click.echo(f"{trace_path}: not a JSON trace: {exc}", err=True)
        sys.exit(1)
    try:
        anchors = _anchors(signal_path, mlflow_run, tracking_uri, webui_artifact, url, token_file)
    except TmpipeError as exc:
        click.echo(f"{trace_path}: cannot check: {exc}", err=True)
        sys.exit(1)
    result = verify_anchored(trace, anchors, hmac_key())
    problems, notes = list(result.problems), list(result.notes)
    if result.ok:
        evidence_problems, evidence_note = _check_evidence(trace["evidence"], trace_path.parent,
                                                           _mlflow_uri(tracking_uri) if mlflow_run else None)
        problems += evidence_problems
        notes.insert(len(notes) - 1, evidence_note)  # before the signature status, which ends the line
    if problems:
        for problem in problems:
            click.echo(f"{trace_path}: {problem}", err=True)
        sys.exit(1)
    click.echo(f"ok: {trace_path}: {len(trace['entries'])} entries, head {trace['chain']['head']}; " + "; ".join(notes))


@review.command("evidence")
@click.argument("trace_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tracking-uri", default=None,
              help="MLflow tracking URI for a pack stored in an MLflow run (default: $MLFLOW_TRACKING_URI, else the "
                   "embedded store under TMPIPE_HOME).")
def evidence_command(trace_path: Path, tracking_uri: str | None) -> None:
    """Print the evidence pack TRACE.json references, after checking its size and sha256.

    Exit 1 if it cannot be read or differs from the reference. The trace itself is checked by
    `tmpipe review verify`.
    """
    from tmpipe.review.evidence_ref import MLFLOW_SCHEME, read_evidence

    trace = _read_json(trace_path, "trace")
    reference = trace.get("evidence")
    if not isinstance(reference, dict) or "sha256" not in reference:
        raise click.ClickException(f"{trace_path}: the trace has no evidence reference (schema_version 2)")
    uri = reference.get("uri")
    try:
        evidence = read_evidence(reference, base_dir=trace_path.parent,
                                 tracking_uri=_mlflow_uri(tracking_uri) if str(uri).startswith(MLFLOW_SCHEME) else None)
    except TmpipeError as exc:
        raise click.ClickException(f"{trace_path}: {exc}") from exc
    click.echo(json.dumps(evidence, indent=2, sort_keys=True))


def _mlflow_uri(tracking_uri: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the embedded store under TMPIPE_HOME."""
    import os

    from tmpipe.home import tmpipe_home
    from tmpipe.tracking import embedded_tracking_uri

    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or embedded_tracking_uri(tmpipe_home())


def _check_evidence(reference: dict, trace_dir: Path, tracking_uri: str | None) -> tuple[list[str], str]:
    """(problems, note) of the evidence pack a verified trace references; the note is for a pack without problems."""
    from tmpipe.review.evidence_ref import MLFLOW_SCHEME, NOT_STORED, check_evidence

    uri = reference["uri"]
    if uri is None:
        return [], f"evidence: {NOT_STORED}, not checked"
    if uri.startswith(MLFLOW_SCHEME) and tracking_uri is None:
        return [], f"evidence {uri} not checked (give --mlflow-run to read it)"
    problems = check_evidence(reference, tracking_uri=tracking_uri, base_dir=trace_dir).problems
    return problems, f"evidence {uri} matches its sha256"


def _anchors(signal_path: Path | None, mlflow_run: str | None, tracking_uri: str | None, webui_artifact: int | None,
             url: str | None, token_file: Path | None) -> list:
    """The outside copies of the head named on the command line, read from where they live."""
    from tmpipe.review.anchors import mlflow_anchor, signal_anchor, webui_anchor

    anchors = []
    if signal_path is not None:
        try:
            signal = json.loads(signal_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReviewError(f"{signal_path}: not a JSON signal: {exc}") from exc
        anchors.append(signal_anchor(signal, str(signal_path)))
    if mlflow_run is not None:
        anchors.append(mlflow_anchor(mlflow_run, _mlflow_uri(tracking_uri)))
    if webui_artifact is not None:
        from tmpipe.store.cli import _store

        anchors.append(webui_anchor(_store(url, token_file), webui_artifact))
    return anchors
