"""Retry policy against real loopback HTTP servers that fail on purpose."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tmpipe.errors import TrackingError
from tmpipe.tracking import get_or_create_experiment
from tmpipe.tracking import retry

EXPERIMENT = {"experiment_id": "7", "name": "tmpipe-tests", "artifact_location": "mlflow-artifacts:/7",
              "lifecycle_stage": "active"}


@pytest.fixture(autouse=True)
def no_mlflow_internal_retries(monkeypatch):
    """MLflow's own HTTP retries would hide how often our policy calls the server."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


class ScriptedServer:
    """Answers the i-th request with the i-th (status, body); repeats the last one."""

    def __init__(self, script: list[tuple[int, dict]]):
        self.script = script
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.paths.append(self.path)
                status, body = outer.script[min(len(outer.paths), len(outer.script)) - 1]
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture
def scripted() -> Iterator:
    servers = []

    def start(script):
        server = ScriptedServer(script)
        server.thread.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.httpd.shutdown()
        server.httpd.server_close()


UNAVAILABLE = (503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "restarting"})


def test_transient_5xx_is_retried_until_success(scripted):
    server = scripted([UNAVAILABLE, UNAVAILABLE, (200, {"experiment": EXPERIMENT})])
    assert get_or_create_experiment(server.uri, "tmpipe-tests") == "7"
    assert len(server.paths) == 3
    assert all(p.startswith("/api/2.0/mlflow/experiments/get-by-name") for p in server.paths)


def test_persistent_5xx_gives_retryable_tracking_error(scripted):
    server = scripted([UNAVAILABLE])
    with pytest.raises(TrackingError) as failure:
        get_or_create_experiment(server.uri, "tmpipe-tests")
    assert failure.value.retryable is True
    assert len(server.paths) == retry.ATTEMPTS


def test_client_error_fails_at_once_and_is_not_retryable(scripted):
    server = scripted([(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad name"})])
    with pytest.raises(TrackingError, match="bad name") as failure:
        get_or_create_experiment(server.uri, "tmpipe-tests")
    assert failure.value.retryable is False
    assert failure.value.status == 400
    assert len(server.paths) == 1


def test_refused_connection_is_retryable():
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TrackingError) as failure:
        get_or_create_experiment(f"http://127.0.0.1:{port}", "tmpipe-tests")
    assert failure.value.retryable is True
