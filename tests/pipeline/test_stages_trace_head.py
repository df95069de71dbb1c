"""The review and persist stages on a real MLflow store and the embedded WebUI store.

The trace head reaches the signal, the MLflow tag of the symbol's run and the WebUI ``signal``
artifact, and ``tmpipe review verify`` catches a resealed forgery through each of them.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from click.testing import CliRunner

from tmpipe.errors import ReviewError
from tmpipe.pipeline import stages
from tmpipe.pipeline.context import RunContext
from tmpipe.review.cli import review as review_cli
from tmpipe.review.trace import HMAC_KEY_ENV, sha256_hex
from tmpipe.store.factory import embedded_store_path
from tmpipe.store.sqlite import SqliteArtifactStore
from tmpipe.tracking import client_for, embedded_tracking_uri
from tmpipe.tracking.stage_logging import ENGINE_RESULT_ARTIFACT, INFERENCE_ARTIFACT, REVIEW_ARTIFACTS

from ..review.forgery import forge_buy, forge_signal_to_match
from ..servers import WEBUI_TOKEN, webui_app_server
from ..tracking.conftest import make_engine_result
from .conftest import DAG_ID, spec_text

SYMBOL = "AAA"
FLAT_INFERENCE = {
    "schema_version": 1, "kind": "inference", "backend": "builtin", "symbol": SYMBOL, "as_of": "2024-03-12",
    "action": "flat", "target_position": 0.0, "q_values": {"short": -0.1, "flat": 0.3, "long": 0.0},
    "probabilities": {"short": 0.2, "flat": 0.6, "long": 0.2}, "reference_price": 101.3,
    "window": {"first_timestamp": "2023-12-01", "last_timestamp": "2024-03-12", "bars": 60},
    "market": {"last_close": 101.3, "return_1d": 0.001, "return_20d": 0.01, "realised_volatility_20d": 0.2,
               "trend_slope_20d": 0.0},
    "model_dir": "unused",
}
KEY = "pipeline-hmac-key-9f8e7d"


@pytest.fixture(scope="session")
def migrated_mlflow(tmp_path_factory) -> Path:
    """An empty, migrated MLflow SQLite store, built once (migrations take seconds)."""
    uri = embedded_tracking_uri(tmp_path_factory.mktemp("mlflow-template"))
    client_for(uri)
    return Path(uri.removeprefix("sqlite:///"))


@pytest.fixture
def run_context(tmp_path, tmpipe_home, monkeypatch, migrated_mlflow) -> RunContext:
    """A DAG run whose symbol's MLflow run already holds a backtest and a flat inference (as the earlier stages leave it)."""
    shutil.copyfile(migrated_mlflow, embedded_tracking_uri(tmpipe_home).removeprefix("sqlite:///"))
    monkeypatch.delenv(HMAC_KEY_ENV, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text())
    ctx = RunContext(dag_id=DAG_ID, dag_run_id="manual__2024-06-03T00:00:00+00:00", logical_date=None,
                     conf={"mode": "both"}, spec_path=str(spec))
    tracker = stages.SymbolStage(ctx, SYMBOL, None).tracker()
    with tracker.stage("train_backtest") as run:
        client = client_for(tracker.tracking_uri)
        client.log_dict(run.run_id, make_engine_result(tmp_path / "engine", SYMBOL), ENGINE_RESULT_ARTIFACT)
        client.log_dict(run.run_id, FLAT_INFERENCE, INFERENCE_ARTIFACT)
    return ctx


def review_and_persist(ctx: RunContext) -> tuple[dict, dict]:
    reviewed = stages.review(ctx, SYMBOL, None)
    return reviewed, stages.persist(ctx, SYMBOL, None)


def verify(*args) -> object:
    return CliRunner().invoke(review_cli, ["verify", *map(str, args)])


def test_the_head_is_in_the_signal_the_mlflow_tag_and_the_webui_signal(run_context, tmpipe_home):
    reviewed, persisted = review_and_persist(run_context)
    store = SqliteArtifactStore(embedded_store_path(tmpipe_home))
    trace = store.get_artifact(persisted["llm_artifact_id"]).content
    head = trace["chain"]["head"]
    assert store.get_artifact(persisted["signal_artifact_id"]).content["trace_head_sha256"] == head
    tracking_uri = f"sqlite:///{(tmpipe_home / 'mlflow' / 'mlflow.db').resolve()}"
    assert client_for(tracking_uri).get_run(reviewed["mlflow_run_id"]).data.tags["tmpipe.trace_head_sha256"] == head
    assert "hmac" not in trace["chain"]  # no key set: unsigned


def test_a_resealed_forgery_with_a_matching_signal_is_caught_by_mlflow_and_the_webui(run_context, tmp_path):
    reviewed, persisted = review_and_persist(run_context)
    run_id, signal_id, llm_id = reviewed["mlflow_run_id"], persisted["signal_artifact_id"], persisted["llm_artifact_id"]
    store = SqliteArtifactStore(embedded_store_path())
    trace, signal = store.get_artifact(llm_id).content, store.get_artifact(signal_id).content
    assert signal["action"] == "HOLD"
    trace_path, signal_path = tmp_path / "trace.json", tmp_path / "signal.json"
    trace_path.write_text(json.dumps(trace))
    genuine = verify(trace_path, "--mlflow-run", run_id, "--webui-artifact", signal_id)
    assert genuine.exit_code == 0, genuine.output
    assert f"head matches MLflow run {run_id}" in genuine.output and f"head matches WebUI artifact {signal_id}" in genuine.output

    forged = forge_buy(trace)  # the attack, plus a signal file rewritten to match
    trace_path.write_text(json.dumps(forged))
    signal_path.write_text(json.dumps(forge_signal_to_match(signal, forged)))
    assert verify(trace_path).exit_code == 0
    assert verify(trace_path, "--signal", signal_path).exit_code == 0
    by_mlflow = verify(trace_path, "--mlflow-run", run_id)
    assert by_mlflow.exit_code == 1
    assert f"tampered: MLflow run {run_id} tag tmpipe.trace_head_sha256 differs: head {forged['chain']['head'][:16]}" in by_mlflow.output
    by_signal_artifact = verify(trace_path, "--webui-artifact", signal_id)
    assert by_signal_artifact.exit_code == 1
    assert f"tampered: WebUI artifact {signal_id} (signal" in by_signal_artifact.output
    assert "action 'BUY' in the trace's outcome, 'HOLD' there" in by_signal_artifact.output
    by_trace_copy = verify(trace_path, "--webui-artifact", llm_id)
    assert by_trace_copy.exit_code == 1 and f"tampered: WebUI artifact {llm_id} (llm" in by_trace_copy.output


def test_verify_reads_a_webui_artifact_over_http(run_context, tmp_path, tmpipe_home, monkeypatch):
    monkeypatch.setenv("TMPIPE_WEBUI_TOKEN", WEBUI_TOKEN)
    _, persisted = review_and_persist(run_context)
    store = SqliteArtifactStore(embedded_store_path())
    trace_path = tmp_path / "trace.json"
    trace_path.write_text(json.dumps(forge_buy(store.get_artifact(persisted["llm_artifact_id"]).content)))
    with webui_app_server(embedded_store_path(tmpipe_home)) as url:
        result = verify(trace_path, "--webui-artifact", persisted["signal_artifact_id"], "--url", url)
        missing = verify(trace_path, "--webui-artifact", 999, "--url", url)
    assert result.exit_code == 1 and "tampered: WebUI artifact" in result.output
    assert missing.exit_code == 1 and "cannot check" in missing.output and "404" in missing.output


def test_an_unknown_mlflow_run_cannot_confirm(run_context, tmp_path):
    review_and_persist(run_context)
    trace_path = tmp_path / "trace.json"
    trace_path.write_text(json.dumps(SqliteArtifactStore(embedded_store_path()).list_artifacts(artifact_type="llm")[0].content))
    result = verify(trace_path, "--mlflow-run", "0" * 32)
    assert result.exit_code == 1 and f"cannot check: MLflow run {'0' * 32}" in result.output


def test_a_keyed_review_signs_the_trace_and_the_key_reaches_no_log_run_or_artifact(run_context, tmp_path, tmpipe_home,
                                                                                  monkeypatch, caplog):
    monkeypatch.setenv(HMAC_KEY_ENV, KEY)
    caplog.set_level(logging.DEBUG)
    reviewed, persisted = review_and_persist(run_context)
    store = SqliteArtifactStore(embedded_store_path())
    trace_path = tmp_path / "trace.json"
    trace_path.write_text(json.dumps(store.get_artifact(persisted["llm_artifact_id"]).content))
    result = verify(trace_path, "--mlflow-run", reviewed["mlflow_run_id"], "--webui-artifact", persisted["signal_artifact_id"])
    assert result.exit_code == 0 and "hmac-sha256 signature valid" in result.output, result.output

    assert KEY not in caplog.text and KEY not in result.output
    assert all(KEY not in json.dumps(artifact.content) for artifact in store.list_artifacts())
    run_id = reviewed["mlflow_run_id"]
    client = client_for(f"sqlite:///{(tmpipe_home / 'mlflow' / 'mlflow.db').resolve()}")
    data = client.get_run(run_id).data
    assert KEY not in json.dumps([data.params, data.tags])
    local = Path(client.download_artifacts(run_id, "", str(tmp_path / "artifacts")))
    assert not [path for path in local.rglob("*") if path.is_file() and KEY.encode() in path.read_bytes()]


def test_persist_refuses_a_trace_replaced_in_mlflow_after_the_review(run_context, tmpipe_home, tmp_path):
    reviewed = stages.review(run_context, SYMBOL, None)
    run_id, trace_artifact = reviewed["mlflow_run_id"], REVIEW_ARTIFACTS[2]
    client = client_for(f"sqlite:///{(tmpipe_home / 'mlflow' / 'mlflow.db').resolve()}")
    trace = json.loads(Path(client.download_artifacts(run_id, trace_artifact, str(tmp_path))).read_text())
    client.log_dict(run_id, forge_buy(trace), trace_artifact)
    with pytest.raises(ReviewError) as refused:
        stages.persist(run_context, SYMBOL, None)
    message = str(refused.value)
    assert message.startswith(f"{SYMBOL}: not publishing review/trace.json of MLflow run {run_id}: tampered: ")
    assert "\n" not in message
    assert SqliteArtifactStore(embedded_store_path()).list_artifacts() == []


def _mlflow_bytes(tmpipe_home: Path, run_id: str, artifact: str, dest: Path) -> bytes:
    client = client_for(f"sqlite:///{(tmpipe_home / 'mlflow' / 'mlflow.db').resolve()}")
    return Path(client.download_artifacts(run_id, artifact, str(dest))).read_bytes()


def test_the_evidence_pack_is_stored_once_in_mlflow_and_the_trace_and_llm_artifact_reference_it(run_context, tmpipe_home,
                                                                                                  tmp_path):
    reviewed, persisted = review_and_persist(run_context)
    run_id = reviewed["mlflow_run_id"]
    stored = _mlflow_bytes(tmpipe_home, run_id, REVIEW_ARTIFACTS[0], tmp_path / "evidence")
    evidence = json.loads(stored)
    assert evidence["symbol"] == SYMBOL and evidence["lineage"]["mlflow_run_id"] == run_id
    reference = {"uri": f"runs:/{run_id}/review/evidence.json", "sha256": sha256_hex(stored), "bytes": len(stored)}
    in_mlflow = json.loads(_mlflow_bytes(tmpipe_home, run_id, REVIEW_ARTIFACTS[2], tmp_path / "trace"))
    llm = SqliteArtifactStore(embedded_store_path(tmpipe_home)).get_artifact(persisted["llm_artifact_id"]).content
    assert in_mlflow["evidence"] == reference and llm["evidence"] == reference
    assert in_mlflow == llm
    trace_path = tmp_path / "trace.json"
    trace_path.write_text(json.dumps(llm))
    result = verify(trace_path, "--mlflow-run", run_id)
    assert result.exit_code == 0 and f"evidence runs:/{run_id}/review/evidence.json matches its sha256" in result.output
    shown = CliRunner().invoke(review_cli, ["evidence", str(trace_path)])
    assert shown.exit_code == 0 and json.loads(shown.output) == evidence


def _persist_refusal(ctx: RunContext, run_id: str) -> str:
    """The problems persist names when it refuses to publish the symbol's review."""
    with pytest.raises(ReviewError) as refused:
        stages.persist(ctx, SYMBOL, None)
    prefix = f"{SYMBOL}: not publishing review/trace.json of MLflow run {run_id}: "
    assert str(refused.value).startswith(prefix)
    assert SqliteArtifactStore(embedded_store_path()).list_artifacts() == []
    return str(refused.value).removeprefix(prefix)


def _cli_names_the_same_problem(trace: dict, run_id: str, problem: str, tmp_path: Path) -> Path:
    """`review verify --mlflow-run` and `review evidence` fail on the trace with persist's ``problem``; the trace's path."""
    trace_path = tmp_path / "trace.json"
    trace_path.write_text(json.dumps(trace))
    result = verify(trace_path, "--mlflow-run", run_id)
    assert result.exit_code == 1 and f"{trace_path}: {problem}" in result.output.splitlines()
    shown = CliRunner().invoke(review_cli, ["evidence", str(trace_path)])
    assert shown.exit_code == 1 and shown.output.strip() == f"Error: {trace_path}: {problem}"
    return trace_path


def test_a_tampered_evidence_json_in_mlflow_is_caught_by_persist_verify_and_evidence(run_context, tmpipe_home, tmp_path):
    reviewed = stages.review(run_context, SYMBOL, None)
    run_id = reviewed["mlflow_run_id"]
    stored = _mlflow_bytes(tmpipe_home, run_id, REVIEW_ARTIFACTS[0], tmp_path / "evidence")
    trace = json.loads(_mlflow_bytes(tmpipe_home, run_id, REVIEW_ARTIFACTS[2], tmp_path / "trace"))
    forged = json.loads(stored)
    forged["inference"]["action"] = "long"  # what a reader of the stored pack would now believe the model saw
    client = client_for(f"sqlite:///{(tmpipe_home / 'mlflow' / 'mlflow.db').resolve()}")
    client.log_text(run_id, json.dumps(forged, sort_keys=True, separators=(",", ":")), REVIEW_ARTIFACTS[0])
    problem = _persist_refusal(run_context, run_id)
    assert problem.startswith(f"tampered: runs:/{run_id}/review/evidence.json has sha256 ")
    trace_path = _cli_names_the_same_problem(trace, run_id, problem, tmp_path)
    assert verify(trace_path).exit_code == 0  # without --mlflow-run the pack is not read: noted, not failed


def test_a_missing_evidence_json_is_the_same_problem_for_persist_verify_and_evidence(run_context, tmpipe_home, tmp_path):
    reviewed = stages.review(run_context, SYMBOL, None)
    run_id = reviewed["mlflow_run_id"]
    trace = json.loads(_mlflow_bytes(tmpipe_home, run_id, REVIEW_ARTIFACTS[2], tmp_path / "trace"))
    client = client_for(f"sqlite:///{(tmpipe_home / 'mlflow' / 'mlflow.db').resolve()}")
    artifact_dir = Path(unquote(urlparse(client.get_run(run_id).info.artifact_uri).path))
    (artifact_dir / REVIEW_ARTIFACTS[0]).unlink()
    problem = _persist_refusal(run_context, run_id)
    assert problem.startswith(f"evidence: runs:/{run_id}/review/evidence.json: ")
    _cli_names_the_same_problem(trace, run_id, problem, tmp_path)
