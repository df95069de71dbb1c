"""``tmpipe review run`` and ``verify`` through click, on real files."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tmpipe.review.cli import review
from tmpipe.review.schema_ids import SIGNAL, schema_problems
from tmpipe.review.trace import sha256_hex


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_run_from_engine_and_inference_results_then_verify(tmp_path, engine_result, inference_result):
    engine = _write(tmp_path / "engine.json", engine_result)
    inference = _write(tmp_path / "inference.json", inference_result)
    runner = CliRunner()
    result = runner.invoke(review, ["run", "--engine-result", str(engine), "--inference", str(inference),
                                    "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    signal = json.loads(result.output)
    assert schema_problems(signal, SIGNAL) == [] and signal["action"] == "BUY"
    assert json.loads((tmp_path / "out" / "signal.json").read_text()) == signal
    recording = json.loads((tmp_path / "out" / "llm_recording.json").read_text())
    assert recording["kind"] == "llm_recording" and len(recording["calls"]) == 3
    trace_path = tmp_path / "out" / "trace.json"
    verified = runner.invoke(review, ["verify", str(trace_path)])
    assert verified.exit_code == 0 and verified.output.startswith("ok:")
    text = trace_path.read_text()
    trace_path.write_text(text.replace('"rules model', '"rulez model', 1))
    tampered = runner.invoke(review, ["verify", str(trace_path)])
    assert tampered.exit_code == 1 and "body_sha256" in tampered.output


def test_run_from_engine_result_alone_uses_the_last_action(tmp_path, engine_result):
    engine = _write(tmp_path / "engine.json", engine_result)
    result = CliRunner().invoke(review, ["run", "--engine-result", str(engine), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    evidence = json.loads((tmp_path / "out" / "evidence.json").read_text())
    assert evidence["inference"]["source"] == "backtest_last_action"
    assert "config: schema defaults" in result.output


def test_run_from_evidence_with_a_spec_review_section(tmp_path, evidence):
    spec = tmp_path / "spec.yaml"
    source = Path("dag_specs/trademaster_autogen_pipeline_workflow.yaml").read_text()
    spec.write_text(source.replace("max_retries: 2", "max_retries: 1").replace("team: round_robin", "team: selector"))
    path = _write(tmp_path / "evidence.json", evidence)
    result = CliRunner().invoke(review, ["run", "--evidence", str(path), "--spec", str(spec), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert trace["team"]["type"] == "selector" and trace["team"]["max_retries"] == 1


def test_run_needs_exactly_one_input(tmp_path, evidence):
    path = _write(tmp_path / "evidence.json", evidence)
    both = CliRunner().invoke(review, ["run", "--evidence", str(path), "--engine-result", str(path), "--out", str(tmp_path)])
    assert both.exit_code == 2 and "exactly one" in both.output


def test_verify_rejects_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "trace.json"
    path.write_text("{not json")
    result = CliRunner().invoke(review, ["verify", str(path)])
    assert result.exit_code == 1 and "not a JSON trace" in result.output


def test_the_trace_references_the_evidence_file_beside_it_and_verify_catches_it_edited(tmp_path, evidence):
    path = _write(tmp_path / "in.json", evidence)
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(review, ["run", "--evidence", str(path), "--out", str(out)]).exit_code == 0
    stored = (out / "evidence.json").read_bytes()
    trace = json.loads((out / "trace.json").read_text())
    assert trace["evidence"] == {"uri": "evidence.json", "sha256": sha256_hex(stored), "bytes": len(stored)}
    assert json.loads(stored) == evidence
    verified = runner.invoke(review, ["verify", str(out / "trace.json")])
    assert verified.exit_code == 0 and "evidence evidence.json matches its sha256" in verified.output
    shown = runner.invoke(review, ["evidence", str(out / "trace.json")])
    assert shown.exit_code == 0 and json.loads(shown.output) == evidence

    (out / "evidence.json").write_bytes(stored.replace(b'"symbol":"AAPL"', b'"symbol":"MSFT"', 1))
    tampered = runner.invoke(review, ["verify", str(out / "trace.json")])
    assert tampered.exit_code == 1 and "tampered: evidence.json has sha256" in tampered.output
    refused = runner.invoke(review, ["evidence", str(out / "trace.json")])
    assert refused.exit_code == 1 and "tampered: evidence.json has sha256" in refused.output
    (out / "evidence.json").unlink()
    missing = runner.invoke(review, ["verify", str(out / "trace.json")])
    assert missing.exit_code == 1 and "evidence: evidence.json: cannot read" in missing.output
    problem = missing.output.strip().removeprefix(f"{out / 'trace.json'}: ")
    unreadable = runner.invoke(review, ["evidence", str(out / "trace.json")])
    assert unreadable.exit_code == 1 and unreadable.output.strip() == f"Error: {out / 'trace.json'}: {problem}"


def test_a_trace_whose_pack_was_not_stored_is_noted_by_verify_and_refused_by_evidence(tmp_path, evidence, review_config):
    from tmpipe.review import review_signal

    trace = review_signal(evidence, review_config, symbol="AAPL", evidence_uri=None).trace
    assert trace["evidence"]["uri"] is None
    trace_path = _write(tmp_path / "trace.json", trace)
    runner = CliRunner()
    verified = runner.invoke(review, ["verify", str(trace_path)])
    assert verified.exit_code == 0
    assert "evidence: pack not stored (the trace's evidence.uri is null), not checked" in verified.output
    shown = runner.invoke(review, ["evidence", str(trace_path)])
    assert shown.exit_code == 1
    assert shown.output.strip() == f"Error: {trace_path}: evidence: pack not stored (the trace's evidence.uri is null)"
