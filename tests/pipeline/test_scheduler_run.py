"""The DAG under a real Airflow scheduler: LocalExecutor workers and PostgreSQL metadata, on loopback.

`airflow api-server`, `airflow scheduler` and `airflow dag-processor` run as separate processes
on a fresh, migrated PostgreSQL database, as in production; every task runs in its own worker process and
reaches the api-server's Execution API with a JWT signed by the shared secret. The test drives
the run through the public REST API (unpause, trigger, poll) and then reads what the tasks left
behind: task states, the summary XCom, the embedded WebUI store and the embedded MLflow store.
Every process is stopped by its PID; their log tails are printed when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tmpipe.airflow_env import installed_dags_folder

from ..servers import free_port, postgres_database, start_server, stop_groups, wait_until_healthy
from .conftest import DAG_ID, mlflow_runs, spec_text, webui_artifacts

pytestmark = [pytest.mark.production, pytest.mark.slow]

RUN_CONF = {"symbols": ["AAA", "BROKEN"]}
CHAIN = ("train_backtest", "inference", "review", "persist")
STARTUP_SECONDS = 120
RUN_SECONDS = 300
TERMINAL_STATES = {"success", "failed"}
USER = "tmpipe-test"


def airflow_environment(root: Path, database_uri: str, api_port: int, password_file: Path) -> dict[str, str]:
    """The one environment of every Airflow process: nothing inherited from another Airflow."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TMPIPE"))}
    api_url = f"http://127.0.0.1:{api_port}"
    return {
        **inherited,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{inherited.get('PATH', '')}",
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_uri,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_FOLDER": str(installed_dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        # The scheduler signs each task's Execution API token; the api-server checks it.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "TMPIPE_HOME": str(root / "home"),
        "TMPIPE_SPEC": str(root / "spec.yaml"),
    }


@dataclass
class Deployment:
    """The running Airflow: its REST client, processes and where everything logs."""

    root: Path
    env: dict[str, str]
    api_url: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    api: httpx.Client | None = None

    @property
    def home(self) -> Path:
        return Path(self.env["TMPIPE_HOME"])

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = self.root / f"{name}.log"
        self.processes[name] = start_server([sys.executable, "-m", "airflow", *args], log, env=self.env)
        return self.processes[name]

    def log_tails(self, chars: int = 3000) -> str:
        """The end of each server log and of each task log, for a failure message."""
        logs = [self.root / f"{name}.log" for name in self.processes]
        logs += sorted((Path(self.env["AIRFLOW_HOME"]) / "logs").rglob("attempt=*.log"))
        return "\n".join(f"===== {path}\n{path.read_text(errors='replace')[-chars:]}" for path in logs if path.exists())

    def check_running(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"airflow {name} exited with {process.returncode}\n{self.log_tails()}"


def wait_for(what: str, deployment: Deployment, seconds: float, probe):
    """Poll ``probe`` until it returns something truthy; fail with the logs if any process dies."""
    deadline = time.monotonic() + seconds
    while True:
        deployment.check_running()
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {seconds}s\n{deployment.log_tails()}"
        time.sleep(1)  # polling a real server for a state change, not a timing assumption


def components_healthy(deployment: Deployment) -> bool:
    try:
        health = httpx.get(f"{deployment.api_url}/api/v2/monitor/health", timeout=10).json()
    except httpx.TransportError:  # a busy api-server; the next poll asks again
        return False
    return all(health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler", "dag_processor"))


def log_in_when_healthy(deployment: Deployment, api_server: subprocess.Popen, password: str) -> None:
    """Wait for the API server, give the deployment an authenticated REST client, wait for the
    scheduler and DAG processor to report healthy."""
    wait_until_healthy(f"{deployment.api_url}/api/v2/monitor/health", api_server, deployment.root / "api-server.log", STARTUP_SECONDS)
    token = httpx.post(f"{deployment.api_url}/auth/token", json={"username": USER, "password": password}, timeout=10)
    assert token.status_code == 201, token.text
    deployment.api = httpx.Client(
        base_url=deployment.api_url, headers={"Authorization": f"Bearer {token.json()['access_token']}"}, timeout=30
    )
    wait_for("scheduler and dag-processor healthy", deployment, STARTUP_SECONDS, lambda: components_healthy(deployment))


def dag_parsed(deployment: Deployment) -> bool:
    errors = deployment.api.get("/api/v2/importErrors").json()["import_errors"]
    assert not errors, f"DAG import errors: {json.dumps(errors, indent=1)}"
    return deployment.api.get(f"/api/v2/dags/{DAG_ID}").status_code == 200


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("scheduler")
    broken = {"data": {"source": "csv", "path": str(root / "no_such_bars.csv")}}
    (root / "spec.yaml").write_text(spec_text(symbols={"BROKEN": broken}))
    password = secrets.token_urlsafe(16)
    password_file = root / "passwords.json"
    password_file.write_text(json.dumps({USER: password}))
    failures_before = request.session.testsfailed
    set_up = False
    # A copy of the database `airflow db migrate` made once for the installed Airflow (servers.template_database).
    with postgres_database("tmpipe_airflow", migrated="airflow") as database_uri:
        port = free_port()
        env = airflow_environment(root, database_uri, port, password_file)
        deployment = Deployment(root, env, f"http://127.0.0.1:{port}")
        try:
            api_server = deployment.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
            # --skip-serve-logs: no task log server on 0.0.0.0; task logs stay in AIRFLOW_HOME/logs.
            deployment.start("scheduler", "scheduler", "--skip-serve-logs")
            deployment.start("dag-processor", "dag-processor")
            log_in_when_healthy(deployment, api_server, password)
            set_up = True
            yield deployment
        finally:
            if deployment.api is not None:
                deployment.api.close()
            stop_groups([deployment.processes[name] for name in ("scheduler", "dag-processor", "api-server") if name in deployment.processes])
            if not set_up or request.session.testsfailed > failures_before:
                print(f"\nAirflow logs of the failed scheduler test:\n{deployment.log_tails()}", file=sys.__stderr__)


def trigger_and_wait(deployment: Deployment, conf: dict) -> dict:
    """One run triggered through the REST API with ``conf``, polled until it is terminal."""
    started = time.monotonic()
    triggered = deployment.api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    assert triggered.status_code == 200, triggered.text
    run_id = triggered.json()["dag_run_id"]
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"

    def terminal():
        try:
            run = deployment.api.get(path).json()
        except httpx.TransportError:  # a busy api-server; the next poll asks again
            return None
        return run if run["state"] in TERMINAL_STATES else None

    run = wait_for(f"dag run {run_id} terminal", deployment, RUN_SECONDS, terminal)
    print(f"dag run {run_id}: {run['state']} after {time.monotonic() - started:.0f}s")
    instances = deployment.api.get(f"{path}/taskInstances", params={"limit": 100}).json()["task_instances"]
    return {"run": run, "path": path, "task_instances": instances}


@pytest.fixture(scope="module")
def dag_run(deployment) -> dict:
    wait_for(f"{DAG_ID} parsed by the dag-processor", deployment, STARTUP_SECONDS, lambda: dag_parsed(deployment))
    unpaused = deployment.api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert unpaused.status_code == 200 and unpaused.json()["is_paused"] is False, unpaused.text
    return trigger_and_wait(deployment, RUN_CONF)


@pytest.fixture(scope="module")
def misspelt_conf_run(deployment, dag_run) -> dict:
    """A second run, after the first: Airflow's trigger accepts the unknown key (Params cannot refuse it)."""
    return trigger_and_wait(deployment, {"symbl": "AAA"})


def xcom(deployment: Deployment, dag_run: dict, task_id: str, key: str, map_index: int = -1):
    response = deployment.api.get(f"{dag_run['path']}/taskInstances/{task_id}/xcomEntries/{key}", params={"map_index": map_index})
    assert response.status_code == 200, response.text
    value = response.json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def states_by_symbol(deployment: Deployment, dag_run: dict) -> dict[tuple[str, str], str]:
    """(symbol, stage) -> state of the mapped chain; map indexes follow resolve_symbols' list."""
    symbols = xcom(deployment, dag_run, "resolve_symbols", "return_value")
    states = {}
    for ti in dag_run["task_instances"]:
        group, _, stage = ti["task_id"].partition(".")
        if group == "symbol_chain":
            symbol = symbols[ti["map_index"]]
            # Labelled by its symbol once it ran; tasks that never ran keep their index.
            assert ti["rendered_map_index"] in (None, str(ti["map_index"]), symbol), ti
            states[(symbol, stage)] = ti["state"]
    return states


def test_run_fails_because_of_the_broken_symbol_only(deployment, dag_run):
    assert dag_run["run"]["state"] == "failed", deployment.log_tails()
    assert dag_run["run"]["conf"] == RUN_CONF
    top = {ti["task_id"]: ti["state"] for ti in dag_run["task_instances"] if "." not in ti["task_id"]}
    assert top == {"resolve_symbols": "success", "score_signals": "success", "summarize": "failed"}, deployment.log_tails()
    assert xcom(deployment, dag_run, "resolve_symbols", "return_value") == ["AAA", "BROKEN"]
    states = states_by_symbol(deployment, dag_run)
    assert {stage: states[("AAA", stage)] for stage in CHAIN} == dict.fromkeys(CHAIN, "success"), deployment.log_tails()
    assert {stage: states[("BROKEN", stage)] for stage in CHAIN} == {
        "train_backtest": "failed",
        "inference": "upstream_failed",
        "review": "upstream_failed",
        "persist": "upstream_failed",
    }, deployment.log_tails()
    # Each task ran in a worker process of its own, not in the scheduler.
    ran = [ti for ti in dag_run["task_instances"] if ti["state"] in ("success", "failed")]
    assert len({ti["pid"] for ti in ran}) == len(ran) == 8
    assert deployment.processes["scheduler"].pid not in {ti["pid"] for ti in ran}


def test_summary_written_before_summarize_failed(deployment, dag_run):
    summary = xcom(deployment, dag_run, "summarize", "summary")
    rows = {row["symbol"]: row for row in summary["symbols"]}
    assert summary["mode"] == "both" and list(rows) == ["AAA", "BROKEN"]
    assert rows["AAA"]["status"] == "success" and rows["AAA"]["error"] is None
    assert rows["AAA"]["action"] in ("BUY", "SELL", "HOLD") and rows["AAA"]["signal_artifact_id"] is not None
    assert rows["BROKEN"]["status"] == "failed"
    assert rows["BROKEN"]["error"].startswith("train_backtest: DataError:") and "no_such_bars.csv" in rows["BROKEN"]["error"]
    assert rows["BROKEN"]["signal_artifact_id"] is None


def test_webui_store_has_the_artifacts_of_aaa_only(deployment, dag_run):
    summary = {row["symbol"]: row for row in xcom(deployment, dag_run, "summarize", "summary")["symbols"]}
    artifacts = webui_artifacts(deployment.home)
    assert sorted((a.symbol, a.artifact_type) for a in artifacts) == [("AAA", "llm"), ("AAA", "signal")]
    for artifact in artifacts:
        assert (artifact.dag_id, artifact.dag_run_id) == (DAG_ID, dag_run["run"]["dag_run_id"])
        assert artifact.mlflow_run_id == summary["AAA"]["mlflow_run_id"]
        assert artifact.id == summary["AAA"][f"{artifact.artifact_type}_artifact_id"]


def test_mlflow_has_one_finished_and_one_failed_run(deployment, dag_run):
    tracking_uri = f"sqlite:///{deployment.home / 'mlflow' / 'mlflow.db'}"
    client, runs = mlflow_runs(deployment.home, tracking_uri)
    by_symbol = {run.data.tags["symbol"]: run for run in runs}
    assert len(runs) == len(by_symbol) == 2 and set(by_symbol) == {"AAA", "BROKEN"}
    assert by_symbol["AAA"].info.status == "FINISHED" and by_symbol["BROKEN"].info.status == "FAILED"
    for run in runs:
        assert run.data.tags["airflow.dag_run_id"] == dag_run["run"]["dag_run_id"]
        assert run.data.tags["airflow.task_url"].startswith(deployment.api_url)
    assert "test_sharpe" in by_symbol["AAA"].data.metrics
    assert {a.path for a in client.list_artifacts(by_symbol["AAA"].info.run_id, "review")} == {
        "review/evidence.json", "review/signal.json", "review/trace.json", "review/llm_recording.json"}


def test_a_failed_resolve_symbols_fails_the_run(deployment, misspelt_conf_run):
    assert misspelt_conf_run["run"]["state"] == "failed", deployment.log_tails()
    top = {ti["task_id"]: ti["state"] for ti in misspelt_conf_run["task_instances"] if "." not in ti["task_id"]}
    assert top == {"resolve_symbols": "failed", "score_signals": "skipped", "summarize": "failed"}, deployment.log_tails()
    chain = {ti["state"] for ti in misspelt_conf_run["task_instances"] if "." in ti["task_id"]}
    assert chain == {"upstream_failed"}
    summary = xcom(deployment, misspelt_conf_run, "summarize", "summary")
    assert summary["symbols"] == []
    assert summary["error"] == "resolve_symbols: SpecError: dag_run.conf:1:1: symbl: unknown key 'symbl' (did you mean 'symbol'?)"
