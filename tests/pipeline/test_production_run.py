"""The production column end to end: `tmpipe run` against real servers on loopback.

MLflow is a real `mlflow server` with a fresh PostgreSQL database and served artifacts; the
WebUI is `tmpipe webui serve` in its own process, reached through a recording proxy so the
test sees the exact requests the pipeline made. Every process is stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tmpipe.store.http import HttpArtifactStore

from .conftest import run_tmpipe

pytestmark = [pytest.mark.production, pytest.mark.slow]

DAG_ID = "trademaster_autogen_pipeline_workflow"
PG = dict(host="127.0.0.1", port=5432, user="postgres")
LINK_CONFIG = {"trademaster": {"seed": 7}}

# The WebUI comes from the spec; the MLflow server from the environment layer (see run_pipeline).
SPEC = """\
schema_version: 1
dag:
  dag_id: trademaster_autogen_pipeline_workflow
  retries: 0
demo_symbols: [AAA, BBB]
defaults:
  data:
    source: demo
    demo_series: synthetic
    synthetic_rows: 260
    lookback: 5
  trademaster:
    epochs: 2
    hidden_size: 16
    batch_size: 32
  mlflow:
    promotion:
      require_beat_buy_and_hold: false
      max_drawdown: 1.0
  webui:
    backend: http
    base_url: {webui_url}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, log_path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, f"{url} exited:\n" + log_path.read_text()[-3000:]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not come up:\n" + log_path.read_text()[-3000:]
        time.sleep(0.25)  # readiness polling, not a timing assumption


def stop_group(process: subprocess.Popen) -> None:
    """The process and the children it forked (mlflow's gunicorn/uvicorn workers), by our PID."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_server(command: list[str], log_path: Path) -> subprocess.Popen:
    with log_path.open("w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def postgres_db():
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"tmpipe_pipeline_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the installed driver is psycopg2.
        yield f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def mlflow_server(postgres_db, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    server = start_server(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", postgres_db,
            "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        root / "server.log",
    )
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_until_healthy(f"{uri}/health", server, root / "server.log", 90)
        yield uri
    finally:
        stop_group(server)


@pytest.fixture(scope="module")
def webui_server(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("webui-server")
    port = free_port()
    server = start_server(
        [sys.executable, "-m", "tmpipe", "webui", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(root / "x.db")],
        root / "server.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(f"{url}/api/health", server, root / "server.log", 30)
        yield url
    finally:
        stop_group(server)


class RecordingProxy:
    """Forwards to the WebUI server and records each request line, so the test can see the calls."""

    def __init__(self, upstream: str):
        self.requests: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                proxy.requests.append((self.command, self.path))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
                answer = httpx.request(self.command, upstream + self.path, content=body, headers=headers, timeout=30)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture(scope="module")
def webui_proxy(webui_server):
    proxy = RecordingProxy(webui_server)
    proxy.thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()
        proxy.thread.join(timeout=10)


@pytest.fixture(scope="module")
def webui(webui_server):
    """AAA and BBB linked to this DAG through the HTTP API, plus two symbols that must not run."""
    store = HttpArtifactStore(webui_server)
    store.add_symbol("AAA", priority=1)
    store.add_link("AAA", DAG_ID, config=LINK_CONFIG, notes="production test")
    store.add_symbol("BBB", priority=2)
    store.add_link("BBB", DAG_ID)
    store.add_symbol("OFF", priority=0, enabled=False)
    store.add_link("OFF", DAG_ID)
    store.add_symbol("ELSE", priority=0)
    store.add_link("ELSE", "some_other_dag")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def production(tmp_path_factory, mlflow_server, webui_proxy, webui):
    """The spec (WebUI via the proxy) and the environment (MLflow server) of the runs."""
    root = tmp_path_factory.mktemp("production")
    spec = root / "spec.yaml"
    spec.write_text(SPEC.format(webui_url=webui_proxy.url))
    env = {"TMPIPE__MLFLOW__TRACKING_URI": mlflow_server}
    return dict(home=root / "home", spec=spec, env=env, mlflow=mlflow_server, proxy=webui_proxy, store=webui)


def run_pipeline(production: dict, *args: str) -> tuple[int, dict]:
    return run_tmpipe(production["home"], "--spec", str(production["spec"]), *args, env=production["env"])


def mlflow_client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def all_runs(client, filter_string: str = "") -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=filter_string, max_results=100) if experiments else []


def runs_of_dag_run(client, dag_run_id: str) -> dict:
    runs = all_runs(client, f"tags.`airflow.dag_run_id` = '{dag_run_id}'")
    assert len(runs) == len({run.data.tags["symbol"] for run in runs}), "one MLflow run per symbol and DAG run"
    return {run.data.tags["symbol"]: run for run in runs}


def artifact_paths(client, run_id: str) -> set[str]:
    top = client.list_artifacts(run_id)
    return {a.path for a in top} | {a.path for d in top if d.is_dir for a in client.list_artifacts(run_id, d.path)}


def test_both_mode_with_symbols_from_the_webui(production):
    proxy = production["proxy"]
    proxy.requests.clear()
    client = mlflow_client(production["mlflow"])
    runs_before = len(all_runs(client))
    code, out = run_pipeline(production, "--mode", "both")  # no --symbols: the WebUI picks them
    assert code == 0, out
    assert ("GET", "/api/workflow-symbols/?enabled_only=true") in proxy.requests
    rows = {row["symbol"]: row for row in out["symbols"]}
    assert list(rows) == ["AAA", "BBB"]  # by priority; OFF is disabled, ELSE is linked to another DAG
    assert out["tracking_uri"] == production["mlflow"]

    assert len(all_runs(client)) - runs_before == 2  # one run per symbol on the server, nothing else
    runs = runs_of_dag_run(client, out["dag_run_id"])
    assert set(runs) == {"AAA", "BBB"}
    for symbol, run in runs.items():
        row = rows[symbol]
        assert row["status"] == "success" and row["error"] is None
        assert row["mlflow_run_id"] == run.info.run_id and run.info.status == "FINISHED"
        assert row["mlflow_run_url"] == f"{production['mlflow']}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the server, not a local path
        assert "test_sharpe" in run.data.metrics
        assert {"backtest/equity_curve.png", "model/MLmodel", "review/trace.json", "review/signal.json"} <= artifact_paths(
            client, run.info.run_id
        )
    assert runs["AAA"].data.params["trademaster.seed"] == "7"  # the link's config layer
    assert runs["BBB"].data.params["trademaster.seed"] == "42"

    artifacts = production["store"].list_artifacts(dag_run_id=out["dag_run_id"])
    assert sorted((a.symbol, a.artifact_type) for a in artifacts) == [("AAA", "llm"), ("AAA", "signal"), ("BBB", "llm"), ("BBB", "signal")]
    for artifact in artifacts:
        run = runs[artifact.symbol]
        assert (artifact.mlflow_run_id, artifact.mlflow_experiment_id) == (run.info.run_id, run.info.experiment_id)
        assert rows[artifact.symbol][f"{artifact.artifact_type}_artifact_id"] == artifact.id
    for symbol in runs:
        signal_doc = next(a for a in artifacts if a.symbol == symbol and a.artifact_type == "signal").content
        assert signal_doc["action"] == rows[symbol]["action"]
        assert signal_doc["lineage"]["model_uri"] == f"runs:/{runs[symbol].info.run_id}/model"
    assert {a.symbol for a in production["store"].list_artifacts()} == {"AAA", "BBB"}


def test_train_backtest_then_inference_on_the_same_servers(production):
    code, trained = run_pipeline(production, "--symbols", "AAA,BBB", "--mode", "train_backtest")
    assert code == 0, trained
    assert all(row["status"] == "success" and row["signal_artifact_id"] is None for row in trained["symbols"])
    assert production["store"].list_artifacts(dag_run_id=trained["dag_run_id"]) == []

    code, inferred = run_pipeline(production, "--symbols", "AAA,BBB", "--mode", "inference")
    assert code == 0, inferred
    client = mlflow_client(production["mlflow"])
    training_runs = runs_of_dag_run(client, trained["dag_run_id"])
    inference_runs = runs_of_dag_run(client, inferred["dag_run_id"])
    assert set(training_runs) == set(inference_runs) == {"AAA", "BBB"}
    rows = {row["symbol"]: row for row in inferred["symbols"]}
    for symbol, run in inference_runs.items():
        assert rows[symbol]["status"] == "success" and rows[symbol]["action"] in ("BUY", "SELL", "HOLD")
        assert rows[symbol]["mlflow_run_id"] == run.info.run_id != training_runs[symbol].info.run_id
        assert run.data.tags["mode"] == "inference"
        assert run.data.tags["inference.model_uri"] == f"models:/tmpipe.{symbol}.deepscalper@champion"
        assert run.data.tags["inference.model_run_id"] == training_runs[symbol].info.run_id  # the model just trained
        assert not any(key.startswith("epoch/") for key in run.data.metrics)  # no training in this run
        assert "epoch/loss" in training_runs[symbol].data.metrics
    artifacts = production["store"].list_artifacts(dag_run_id=inferred["dag_run_id"])
    assert sorted((a.symbol, a.artifact_type) for a in artifacts) == [("AAA", "llm"), ("AAA", "signal"), ("BBB", "llm"), ("BBB", "signal")]
    for artifact in artifacts:
        assert artifact.mlflow_run_id == inference_runs[artifact.symbol].info.run_id
        if artifact.artifact_type == "signal":
            assert artifact.content["lineage"]["model_uri"] == f"models:/tmpipe.{artifact.symbol}.deepscalper@champion"
