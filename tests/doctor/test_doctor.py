"""`tmpipe doctor` against real servers on 127.0.0.1, in a subprocess with the worker's environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ..servers import WEBUI_TOKEN, ForwardingProxy, free_port, mlflow_server, webui_app_server

LLM_KEY = "sk-doctor-test-key-0123456789"


class ModelsEndpoint:
    """GET /models answering 200 for LLM_KEY and 401 otherwise, like an OpenAI-compatible server."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                ok = self.headers.get("Authorization") == f"Bearer {LLM_KEY}"
                self.send_response(200 if ok and self.path.endswith("/models") else 401)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def llm():
    endpoint = ModelsEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def broker():
    """A TCP listener standing in for the Celery broker's port (the doctor only connects)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


@pytest.fixture
def webui(tmp_path):
    """The WebUI app over HTTP from a thread of this process: the doctor is the process under test."""
    with webui_app_server(tmp_path / "webui.db") as url:
        yield url


@pytest.fixture
def worker_env(tmp_path, webui, llm, broker):
    """A production-like worker: HTTP WebUI with its token, an LLM endpoint, Celery on PostgreSQL."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TMPIPE", "OPENAI"))}
    env.update({
        "TMPIPE_HOME": str(home),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "TMPIPE__WEBUI__BACKEND": "http",
        "TMPIPE__WEBUI__BASE_URL": webui,
        "TMPIPE_WEBUI_TOKEN": WEBUI_TOKEN,
        "TMPIPE__REVIEW__MODEL_CLIENT__PROVIDER": "openai",
        "TMPIPE__REVIEW__MODEL_CLIENT__BASE_URL": llm.url,
        "OPENAI_API_KEY": LLM_KEY,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow:dbpass-secret@127.0.0.1:5432/airflow",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql+psycopg2://airflow:dbpass-secret@127.0.0.1:5432/airflow",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
    })
    return env


def doctor(env: dict[str, str], *args: str) -> tuple[int, dict[str, dict], str]:
    result = subprocess.run([sys.executable, "-m", "tmpipe", "doctor", "--timeout", "3", "--json", *args],
                            env=env, capture_output=True, text=True, timeout=120)
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    return result.returncode, rows, result.stdout + result.stderr


def test_a_good_production_worker_is_all_ok(worker_env):
    code, rows, out = doctor(worker_env)
    assert {name: row["status"] for name, row in rows.items() if row["status"] != "ok"} == {}, out
    assert code == 0
    assert {"spec", "TMPIPE_HOME", "mlflow", "webui", "llm", "airflow", "airflow metadata db", "celery result backend",
            "celery broker", "airflow heartbeats", "dag-factory telemetry"} <= set(rows)
    assert "accepted the token" in rows["webui"]["detail"]
    assert "300s" in rows["airflow heartbeats"]["detail"]
    assert "dbpass-secret" not in out and LLM_KEY not in out and WEBUI_TOKEN not in out


def test_a_down_mlflow_server_fails_with_the_fix(worker_env):
    worker_env["TMPIPE__MLFLOW__TRACKING_URI"] = f"http://mlflow:hunter2pass@127.0.0.1:{free_port()}"
    code, rows, out = doctor(worker_env)
    assert code == 1
    assert rows["mlflow"]["status"] == "fail" and "unreachable" in rows["mlflow"]["detail"]
    assert "start the MLflow server" in rows["mlflow"]["fix"]
    assert "hunter2pass" not in out and "mlflow:***@" in out


@pytest.mark.production
def test_a_running_mlflow_server_is_ok(worker_env, tmp_path):
    with mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path) as uri:
        worker_env["TMPIPE__MLFLOW__TRACKING_URI"] = uri
        code, rows, out = doctor(worker_env)
    assert rows["mlflow"]["status"] == "ok" and uri in rows["mlflow"]["detail"], out
    assert code == 0


def test_an_unwritable_local_mlflow_store_fails(worker_env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    worker_env["TMPIPE__MLFLOW__TRACKING_URI"] = f"sqlite:///{blocker}/mlflow.db"
    code, rows, _ = doctor(worker_env)
    assert code == 1 and rows["mlflow"]["status"] == "fail" and "not a writable folder" in rows["mlflow"]["detail"]


def test_a_wrong_webui_token_fails(worker_env):
    worker_env["TMPIPE_WEBUI_TOKEN"] = "not-the-server-token-0000"
    code, rows, out = doctor(worker_env)
    assert code == 1
    assert rows["webui"]["status"] == "fail" and "refused the token" in rows["webui"]["detail"]
    assert "not-the-server-token-0000" not in out


def test_a_down_webui_fails(worker_env):
    worker_env["TMPIPE__WEBUI__BASE_URL"] = f"http://127.0.0.1:{free_port()}"
    code, rows, _ = doctor(worker_env)
    assert code == 1 and rows["webui"]["status"] == "fail" and "start the WebUI server" in rows["webui"]["fix"]


def test_a_stalled_webui_fails_within_the_timeout(worker_env, webui):
    with ForwardingProxy(webui) as proxy:
        proxy.script = ["stall"]
        worker_env["TMPIPE__WEBUI__BASE_URL"] = proxy.url
        code, rows, _ = doctor(worker_env)
    assert code == 1 and rows["webui"]["status"] == "fail" and "ReadTimeout" in rows["webui"]["detail"]


def test_a_missing_llm_key_fails_and_a_wrong_one_is_refused(worker_env):
    del worker_env["OPENAI_API_KEY"]
    code, rows, _ = doctor(worker_env)
    assert code == 1 and rows["llm"]["status"] == "fail" and "export OPENAI_API_KEY" in rows["llm"]["fix"]
    worker_env["OPENAI_API_KEY"] = "sk-wrong-key-99999999"
    code, rows, out = doctor(worker_env)
    assert code == 1 and "refused the key" in rows["llm"]["detail"] and "sk-wrong-key-99999999" not in out


def test_postgres_urls_without_psycopg2_and_a_down_broker_fail(worker_env):
    worker_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "postgresql://airflow@127.0.0.1/airflow"
    worker_env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+postgresql://airflow@127.0.0.1/airflow"
    worker_env["AIRFLOW__CELERY__BROKER_URL"] = f"redis://:brokerpass1@127.0.0.1:{free_port()}/0"
    worker_env["AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY"] = "True"
    code, rows, out = doctor(worker_env)
    assert code == 1
    assert rows["airflow metadata db"]["status"] == "fail" and "postgresql+psycopg2://" in rows["airflow metadata db"]["fix"]
    assert rows["celery result backend"]["status"] == "fail" and "db+postgresql+psycopg2://" in rows["celery result backend"]["fix"]
    assert rows["celery broker"]["status"] == "fail" and "brokerpass1" not in out
    assert rows["dag-factory telemetry"]["status"] == "warn"


def test_a_bad_spec_and_an_unwritable_home_fail(worker_env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dag_id: [\n")
    worker_env["TMPIPE_SPEC"] = str(bad)
    worker_env["TMPIPE_HOME"] = str(tmp_path / "missing")
    code, rows, _ = doctor(worker_env)
    assert code == 1
    assert rows["spec"]["status"] == "fail" and "bad.yaml" in rows["spec"]["detail"] and "TMPIPE_SPEC" in rows["spec"]["fix"]
    assert rows["TMPIPE_HOME"]["status"] == "fail" and "does not exist" in rows["TMPIPE_HOME"]["detail"]
    assert all(rows[name]["detail"] == "not checked: the spec did not load" for name in ("mlflow", "webui", "llm"))


def test_the_embedded_webui_store_must_open(worker_env):
    for key in ("TMPIPE__WEBUI__BACKEND", "TMPIPE__WEBUI__BASE_URL"):
        del worker_env[key]
    code, rows, _ = doctor(worker_env)
    assert rows["webui"]["status"] == "ok" and "will be created" in rows["webui"]["detail"]
    store = Path(worker_env["TMPIPE_HOME"]) / "webui" / "webui.db"
    store.parent.mkdir()
    store.write_bytes(b"not a database, just bytes" * 100)
    code, rows, _ = doctor(worker_env)
    assert code == 1 and rows["webui"]["status"] == "fail" and "webui.db" in rows["webui"]["detail"]


def test_the_table_has_one_row_per_check(worker_env, tmp_path):
    home = tmp_path / "h[red]"  # rich markup in a detail is printed as text
    home.mkdir()
    worker_env["TMPIPE_HOME"] = str(home)
    result = subprocess.run([sys.executable, "-m", "tmpipe", "doctor", "--timeout", "3"], env=worker_env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("TMPIPE_HOME", "celery broker", "dag-factory telemetry", "h[red]"):
        assert name in result.stdout
