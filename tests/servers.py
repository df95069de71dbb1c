"""Real servers on loopback for the tests: PostgreSQL databases, `mlflow server`, `tmpipe webui serve`, a proxy.

Shared by tests/store, tests/tracking and tests/pipeline (import with `from ..servers import ...`;
the suite runs with --import-mode=importlib). Every process is started in its own process group
and stopped by its PID, so the workers a server forks go with it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import httpx
import pytest

PG = dict(host="127.0.0.1", port=5432, user="postgres")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, log_path: Path, seconds: float) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it exits or takes too long."""
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


def start_server(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`command` in a new session (its own process group), output to `log_path`."""
    with log_path.open("w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def stop_group(process: subprocess.Popen) -> None:
    """The process and the children it forked (mlflow's gunicorn/uvicorn workers), by our PID."""
    stop_groups([process])


def stop_groups(processes: list[subprocess.Popen]) -> None:
    """Several processes with their children, by our PIDs: all are asked to stop at once (each
    shuts down in its own time, not one after another), then given 20 s before SIGKILL."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in running:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def _serving(
    command: list[str], port: int, health_path: str, log_path: Path, seconds: float, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Start `command` listening on `port`, yield its base URL once healthy, stop it on exit."""
    process = start_server(command, log_path, env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url + health_path, process, log_path, seconds)
        yield url
    finally:
        stop_group(process)


def _admin_connection():
    psycopg2 = pytest.importorskip("psycopg2")
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    return admin


def _uri(name: str) -> str:
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the installed driver is psycopg2.
    return f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


@contextmanager
def postgres_database(prefix: str = "tmpipe_test", migrated: str | None = None) -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped on exit; yields its SQLAlchemy URI.

    With ``migrated`` ("airflow" or "mlflow") it is a copy of a template database holding that
    schema, migrated once per installed version (template_database): a copy takes a fraction of
    a second, a migration of an empty database many seconds.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _admin_connection()
    with admin.cursor() as cursor:
        if migrated is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
        else:
            template = template_database(migrated)
            with _template_lock(cursor):  # no copy while another worker connects to a template it builds
                cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _uri(name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# Each schema's distribution, Alembic versions folder and the command that migrates an empty
# database at a URI: Airflow's as `airflow db migrate` does it (the URI in its environment);
# MLflow's as `mlflow server --serve-artifacts` does it when it starts (its default experiment
# stores artifacts under mlflow-artifacts:/0, as the server would have made it).
MLFLOW_TABLES = "import sys; from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore; SqlAlchemyStore(sys.argv[1], 'mlflow-artifacts:/')"
SCHEMAS = {
    "airflow": ("apache-airflow", "airflow/migrations/versions", lambda uri: [sys.executable, "-m", "airflow", "db", "migrate"]),
    "mlflow": ("mlflow", "mlflow/store/db_migrations/versions", lambda uri: [sys.executable, "-c", MLFLOW_TABLES, uri]),
}
TEMPLATE_LOCK = 7_160_151  # the PostgreSQL advisory lock key under which templates are built and copied


@contextmanager
def _template_lock(cursor) -> Iterator[None]:
    cursor.execute("SELECT pg_advisory_lock(%s)", (TEMPLATE_LOCK,))
    try:
        yield
    finally:
        cursor.execute("SELECT pg_advisory_unlock(%s)", (TEMPLATE_LOCK,))


def alembic_heads(versions: Path) -> list[str]:
    """The head revisions of an Alembic versions folder, read from its scripts' text (importing
    them would import, and configure, the package they belong to)."""
    revisions, parents = set(), set()
    for script in versions.glob("*.py"):
        text = script.read_text()
        revisions.update(re.findall(r'^revision = "(\w+)"', text, re.MULTILINE))
        for line in re.findall(r"^down_revision = (.*)$", text, re.MULTILINE):
            parents.update(re.findall(r'"(\w+)"', line))
    return sorted(revisions - parents)


def template_database(schema: str) -> str:
    """The name of the template database of ``schema`` ("airflow" or "mlflow") for the installed
    version and its Alembic head, built if the local PostgreSQL has none yet.

    Built under an advisory lock, so test workers starting together build it once, and under a
    name of its own, renamed only once migrated, so a failed build leaves no template behind;
    templates of other versions of the schema are dropped then.
    """
    distribution, versions, migrate = SCHEMAS[schema]
    package_root = Path(importlib.util.find_spec(distribution.removeprefix("apache-")).origin).parent.parent
    key = f"{metadata.version(distribution)} {' '.join(alembic_heads(package_root / versions))}"
    name = f"tmpipe_template_{schema}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    admin = _admin_connection()
    try:
        with admin.cursor() as cursor, _template_lock(cursor):
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"tmpipe\\_template\\_{schema}\\_%",))
                for (stale,) in cursor.fetchall():
                    cursor.execute(f'DROP DATABASE "{stale}" WITH (FORCE)')
                building = f"{name}_building"
                cursor.execute(f'CREATE DATABASE "{building}"')
                with tempfile.TemporaryDirectory(prefix=f"{schema}-template-") as home:
                    _migrate(schema, migrate(_uri(building)), _uri(building), Path(home))
                cursor.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    finally:
        admin.close()
    return name


def _migrate(schema: str, command: list[str], uri: str, home: Path) -> None:
    """Migrates the empty database at ``uri`` in a child process whose environment names it and
    nothing of another Airflow or MLflow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TMPIPE", "MLFLOW"))}
    env.update(
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=uri,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY="False",
    )
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=home)
    assert done.returncode == 0, f"migrating the {schema} template failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@contextmanager
def mlflow_server(backend_uri: str, root: Path) -> Iterator[str]:
    """`mlflow server` on `backend_uri` with served artifacts under `root`; yields its URI."""
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--serve-artifacts", "--artifacts-destination", str(root / "mlflow-artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    with _serving(command, port, "/health", root / "mlflow-server.log", 90, env=mlflow_server_env()) as uri:
        yield uri


def mlflow_server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a test `mlflow server`: without the job runner MLflow starts beside it
    by default (seven huey consumer processes for its GenAI jobs, which tmpipe does not use)."""
    return {**(os.environ if base is None else base), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


WEBUI_TOKEN = "tmpipe-test-token-" + uuid.uuid4().hex


@contextmanager
def webui_server(db_path: Path, *args: str, token: str | None = WEBUI_TOKEN) -> Iterator[str]:
    """`tmpipe webui serve` on the SQLite file `db_path`, log next to it; yields its URL.

    The server requires `token` (given as TMPIPE_WEBUI_TOKEN); `args` are more serve options.
    """
    port = free_port()
    command = [sys.executable, "-m", "tmpipe", "webui", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db_path), *args]
    env = {k: v for k, v in os.environ.items() if k != "TMPIPE_WEBUI_TOKEN"}
    if token is not None:
        env["TMPIPE_WEBUI_TOKEN"] = token
    with _serving(command, port, "/api/health", db_path.parent / "webui-server.log", 30, env) as url:
        yield url


@contextmanager
def webui_app_server(db_path: Path, *, token: str | None = WEBUI_TOKEN) -> Iterator[str]:
    """The `tmpipe webui serve` app on the SQLite file `db_path`, served by uvicorn on 127.0.0.1 in a
    thread of the test process; yields its URL.

    The same app and HTTP server as `webui_server`, without a Python process to start per test:
    for tests of the API and its clients. Tests of the `serve` command itself use `webui_server`.
    """
    import uvicorn

    from tmpipe.store.server import create_app
    from tmpipe.store.sqlite import SqliteArtifactStore

    app = create_app(SqliteArtifactStore(db_path), token=token)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the in-process WebUI server did not start"
            time.sleep(0.01)  # readiness polling, not a timing assumption
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        listener.close()


class ForwardingProxy:
    """A reverse proxy on 127.0.0.1 in front of a real server, recording every request.

    Faults are scripted per request: "500" answers 500, "stall" holds the request without an
    answer until the client gives up, "drop_after" forwards the request and then answers 502 (the
    server did the work but the client never hears so), "pass" forwards. With no script every
    request passes, so the proxy doubles as a recorder of the exact calls a client made.
    """

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.script: list[str] = []
        self.seen: list[tuple[str, str, str]] = []  # (method, path, fault)
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy.script.pop(0) if proxy.script else "pass"
                proxy.seen.append((self.command, self.path, fault))
                if fault == "500":
                    return self._answer(500, b'{"detail": "injected failure"}')
                if fault == "stall":
                    proxy._release.wait(timeout=10)
                    return None
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
                response = httpx.request(self.command, proxy.upstream + self.path, content=body, headers=headers, timeout=30)
                if fault == "drop_after":
                    return self._answer(502, b'{"detail": "injected bad gateway after forwarding"}')
                return self._answer(response.status_code, response.content, response.headers.get("content-type"))

            def _answer(self, status: int, payload: bytes, content_type: str | None = None):
                self.send_response(status)
                self.send_header("Content-Type", content_type or "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ForwardingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)
