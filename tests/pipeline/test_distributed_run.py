"""The DAG on a CeleryExecutor deployment on loopback, as docs/deploy.md describes it, and its faults.

Extends the real-scheduler harness of test_scheduler_run.py (same environment, processes and
REST polling) with what a Celery deployment adds: the Redis broker (a db number of its own,
flushed first), a `db+postgresql+psycopg2://` result backend, two `airflow celery worker`s with
their own --pid files and queues, an `mlflow server` on PostgreSQL and `tmpipe webui serve`.
A cluster policy in the test's airflow_local_settings.py sends map index 0 of every symbol
task to queue symbols_0 (worker a) and index 1 to symbols_1 (worker b), so where each symbol
runs is known. Then the faults: a worker SIGKILLed during train_backtest, the WebUI down for
30 s, the MLflow server restarted. Every process is stopped by its PID, also on failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest
import yaml

from tmpipe.store.http import HttpArtifactStore

from ..servers import (
    WEBUI_TOKEN,
    free_port,
    mlflow_server_env,
    postgres_database,
    start_server,
    stop_group,
    stop_groups,
    wait_until_healthy,
)
from .conftest import DAG_ID, link_pipeline_symbols, spec_text
from .test_scheduler_run import (
    STARTUP_SECONDS,
    USER,
    Deployment,
    airflow_environment,
    dag_parsed,
    log_in_when_healthy,
    trigger_and_wait,
    wait_for,
    xcom,
)

pytestmark = [pytest.mark.distributed, pytest.mark.production, pytest.mark.slow]

REDIS_DB = 11  # the machine's Redis; a db number no other test uses
HEARTBEAT_TIMEOUT = 20  # [scheduler] task_instance_heartbeat_timeout, short for the kill test
DETECTION_INTERVAL = 2  # [scheduler] task_instance_heartbeat_timeout_detection_interval
RETRY_DELAY = 5  # the spec's dag.retry_delay_seconds
# docs/deploy.md: a killed worker's task is retried within timeout + detection + retry delay
# (+ scheduling and the new try's own run time, measured below).
RECOVERY_BOUND = HEARTBEAT_TIMEOUT + DETECTION_INTERVAL + RETRY_DELAY
WEBUI_DOWN_SECONDS = 30

CLUSTER_POLICY = '''
def task_instance_mutation_hook(task_instance):
    """Symbol tasks by map index: 0 on queue symbols_0 (worker a), 1 on symbols_1 (worker b)."""
    if task_instance.task_id.startswith("symbol_chain.") and task_instance.map_index >= 0:
        task_instance.queue = f"symbols_{task_instance.map_index % 2}"
'''
WORKER_QUEUES = {"a": "default,symbols_0", "b": "symbols_1"}


class CeleryDeployment(Deployment):
    """The Airflow deployment plus the Celery workers, MLflow server and WebUI it needs."""

    def start_command(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        self.processes[name] = start_server(command, self.root / f"{name}.log", env=env or self.env)
        return self.processes[name]

    def start_worker(self, name: str) -> subprocess.Popen:
        # Two workers on one host: each its own --pid file (the default is shared), no log
        # server on 0.0.0.0:8793 (task logs are read from the shared local folder).
        return self.start(
            f"worker-{name}", "celery", "worker", "--queues", WORKER_QUEUES[name], "--concurrency", "1",
            "--pid", str(self.root / f"worker-{name}.pid"), "--celery-hostname", f"worker-{name}@%h",
            "--skip-serve-logs", "--without-mingle", "--without-gossip",
        )

    def stop(self, name: str) -> None:
        stop_group(self.processes.pop(name))

    def log_of(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")


def flush_redis_db(number: int) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=number).flushdb()


@pytest.fixture(scope="module")
def celery(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("distributed")
    (root / "policy").mkdir()
    (root / "policy" / "airflow_local_settings.py").write_text(CLUSTER_POLICY)
    password = secrets.token_urlsafe(16)
    password_file = root / "passwords.json"
    password_file.write_text(json.dumps({USER: password}))
    flush_redis_db(REDIS_DB)
    failures_before = request.session.testsfailed
    set_up = False
    # Copies of the databases Airflow's and MLflow's migrations made once for the installed
    # versions (servers.template_database), not migrated again here.
    with postgres_database("tmpipe_airflow", migrated="airflow") as airflow_db, \
            postgres_database("tmpipe_mlflow", migrated="mlflow") as mlflow_db:
        ports = {name: free_port() for name in ("api", "mlflow", "webui")}
        mlflow_url, webui_url = f"http://127.0.0.1:{ports['mlflow']}", f"http://127.0.0.1:{ports['webui']}"
        spec = yaml.safe_load(spec_text({"webui": {"backend": "http", "base_url": webui_url}}))
        spec["dag"].update(retries=3, retry_delay_seconds=RETRY_DELAY)
        (root / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        env = {
            **airflow_environment(root, airflow_db, ports["api"], password_file),
            "PYTHONPATH": str(root / "policy"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__FERNET_KEY": "",  # set below: one key for every process
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + airflow_db,
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": str(DETECTION_INTERVAL),
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            "TMPIPE__MLFLOW__TRACKING_URI": mlflow_url,
            "TMPIPE_WEBUI_TOKEN": WEBUI_TOKEN,
        }
        from cryptography.fernet import Fernet

        env["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
        deployment = CeleryDeployment(root, env, f"http://127.0.0.1:{ports['api']}")
        deployment.mlflow_url, deployment.webui_url = mlflow_url, webui_url
        deployment.mlflow_command = [
            sys.executable, "-m", "mlflow", "server", "--backend-store-uri", mlflow_db,
            "--serve-artifacts", "--artifacts-destination", str(root / "mlflow-artifacts"),
            "--host", "127.0.0.1", "--port", str(ports["mlflow"]), "--workers", "1",
        ]
        webui_env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW")}
        deployment.webui_command = [
            sys.executable, "-m", "tmpipe", "webui", "serve", "--host", "127.0.0.1", "--port", str(ports["webui"]),
            "--db", str(root / "webui.db"),
        ]
        deployment.webui_env = webui_env
        try:
            start_mlflow(deployment)
            start_webui(deployment)
            api_server = deployment.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(ports["api"]))
            deployment.start("scheduler", "scheduler", "--skip-serve-logs")
            deployment.start("dag-processor", "dag-processor")
            deployment.start_worker("a")
            deployment.start_worker("b")
            log_in_when_healthy(deployment, api_server, password)
            wait_for(f"{DAG_ID} parsed", deployment, STARTUP_SECONDS, lambda: dag_parsed(deployment))
            unpaused = deployment.api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
            assert unpaused.status_code == 200, unpaused.text
            set_up = True
            yield deployment
        finally:
            if deployment.api is not None:
                deployment.api.close()
            stop_groups(list(deployment.processes.values()))
            if not set_up or request.session.testsfailed > failures_before:
                print(f"\nLogs of the failed distributed test:\n{deployment.log_tails()}", file=sys.__stderr__)
            flush_redis_db(REDIS_DB)


def start_mlflow(deployment: CeleryDeployment) -> None:
    process = deployment.start_command("mlflow", deployment.mlflow_command, mlflow_server_env(deployment.env))
    wait_until_healthy(f"{deployment.mlflow_url}/health", process, deployment.root / "mlflow.log", 90)


def start_webui(deployment: CeleryDeployment) -> None:
    process = deployment.start_command("webui", deployment.webui_command, deployment.webui_env)
    wait_until_healthy(f"{deployment.webui_url}/api/health", process, deployment.root / "webui.log", 30)


@pytest.fixture(scope="module")
def webui(celery):
    """AAA and BBB linked to the DAG (AAA first by priority), a disabled one and one of another DAG."""
    store = HttpArtifactStore(celery.webui_url, token=WEBUI_TOKEN)
    link_pipeline_symbols(store)
    try:
        yield store
    finally:
        store.close()


def symbol_instances(run: dict) -> dict[tuple[str, int], dict]:
    return {(ti["task_id"].split(".", 1)[1], ti["map_index"]): ti for ti in run["task_instances"] if "." in ti["task_id"]}


def counts(deployment: CeleryDeployment, webui: HttpArtifactStore) -> dict[str, int]:
    """MLflow runs, registered model versions and WebUI artifacts, for the report of each fault."""
    from mlflow import MlflowClient

    client = MlflowClient(deployment.mlflow_url)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=1000)
    versions = client.search_model_versions(max_results=1000)
    return {"runs": len(runs), "model_versions": len(versions), "artifacts": len(webui.list_artifacts())}


def mlflow_runs_of(deployment: CeleryDeployment, dag_run_id: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(deployment.mlflow_url)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.`airflow.dag_run_id` = '{dag_run_id}'", max_results=100)


def test_no_conf_runs_the_webui_symbols_on_both_workers(celery, webui):
    started = time.monotonic()
    run = trigger_and_wait(celery, {})
    elapsed = time.monotonic() - started
    assert run["run"]["state"] == "success", celery.log_tails()
    assert xcom(celery, run, "resolve_symbols", "return_value") == ["AAA", "BBB"]
    instances = symbol_instances(run)
    assert {ti["state"] for ti in instances.values()} == {"success"}
    assert {ti["queue"] for (_, index), ti in instances.items() if index == 0} == {"symbols_0"}
    assert {ti["queue"] for (_, index), ti in instances.items() if index == 1} == {"symbols_1"}
    # Each worker's log names the task instances it executed: AAA's on a, BBB's on b.
    for worker, index in (("a", 0), ("b", 1)):
        log = celery.log_of(f"worker-{worker}")
        assert all(ti["id"] in log for (_, i), ti in instances.items() if i == index), f"worker {worker}"
        assert not any(ti["id"] in log for (_, i), ti in instances.items() if i != index), f"worker {worker}"
    print(f"2-symbol run, trigger to success: {elapsed:.0f}s; counts {counts(celery, webui)}")


def test_bad_mode_is_rejected_at_trigger(celery):
    response = celery.api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"mode": "bogus"}})
    assert response.status_code == 400 and "mode" in response.text, response.text


def test_misspelt_conf_key_fails_the_run(celery):
    run = trigger_and_wait(celery, {"symbl": "AAA"})
    assert run["run"]["state"] == "failed"
    top = {ti["task_id"]: ti["state"] for ti in run["task_instances"] if "." not in ti["task_id"]}
    assert top == {"resolve_symbols": "failed", "score_signals": "skipped", "summarize": "failed"}


def test_train_backtest_then_inference(celery, webui):
    trained = trigger_and_wait(celery, {"symbols": ["AAA", "BBB"], "mode": "train_backtest"})
    assert trained["run"]["state"] == "success", celery.log_tails()
    inferred = trigger_and_wait(celery, {"symbols": ["AAA", "BBB"], "mode": "inference"})
    assert inferred["run"]["state"] == "success", celery.log_tails()
    rows = {row["symbol"]: row for row in xcom(celery, inferred, "summarize", "summary")["symbols"]}
    assert set(rows) == {"AAA", "BBB"}
    assert all(row["status"] == "success" and row["signal_artifact_id"] is not None for row in rows.values())


def task_instance(deployment: CeleryDeployment, run_id: str, task: str, map_index: int) -> dict | None:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/symbol_chain.{task}/{map_index}"
    try:
        response = deployment.api.get(path)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def trigger(deployment: CeleryDeployment, conf: dict) -> str:
    response = deployment.api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"]


def wait_terminal(deployment: CeleryDeployment, run_id: str, seconds: float) -> dict:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"

    def terminal():
        try:
            run = deployment.api.get(path).json()
        except httpx.TransportError:
            return None
        return run if run["state"] in ("success", "failed") else None

    run = wait_for(f"dag run {run_id} terminal", deployment, seconds, terminal)
    instances = deployment.api.get(f"{path}/taskInstances", params={"limit": 100}).json()["task_instances"]
    return {"run": run, "path": path, "task_instances": instances}


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def ms_time(milliseconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(milliseconds / 1000, dt.timezone.utc)


def task_processes_of(ti_id: str) -> list[psutil.Process]:
    """The task process of a task instance: the task runner titles itself `airflow worker -- <ti id>`."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(ti_id in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


def test_killed_worker_during_train_backtest(celery, webui):
    before = counts(celery, webui)
    # Longer training so the kill lands inside train_backtest.
    run_id = trigger(celery, {"symbols": ["AAA", "BBB"], "mode": "train_backtest", "config": {"trademaster": {"epochs": 50}}})

    def training_with_a_run():
        ti = task_instance(celery, run_id, "train_backtest", 0)
        if not ti or ti["state"] != "running" or not ti.get("pid"):
            return None
        return ti if any(r.data.tags.get("symbol") == "AAA" for r in mlflow_runs_of(celery, run_id)) else None

    running = wait_for("AAA training on worker a", celery, 300, training_with_a_run)
    worker = celery.processes.pop("worker-a")
    task_processes = task_processes_of(running["id"])
    assert task_processes, f"no process titled for task instance {running['id']}"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    killed_at, killed_wall = time.monotonic(), dt.datetime.now(dt.timezone.utc)
    try:
        # The orphaned task process stops by itself within seconds, with a marker line.
        _, alive = psutil.wait_procs(task_processes, timeout=10)
        orphan_stopped = time.monotonic() - killed_at
    finally:
        # Whatever the kill left goes, as systemd takes a dead unit's cgroup (also if the test fails).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
    assert not alive, "the killed worker's task process is still running"
    marker = (celery.home / "logs" / "aborted-tasks.log").read_text()
    assert f"{run_id} symbol_chain.train_backtest[0] try 1" in marker
    celery.start_worker("a")  # the service manager restarts the worker

    done = wait_terminal(celery, run_id, RECOVERY_BOUND + 300)
    recovered = time.monotonic() - killed_at
    assert done["run"]["state"] == "success", celery.log_tails()
    retried = symbol_instances(done)[("train_backtest", 0)]
    assert retried["try_number"] == 2
    # The retry was queued within the documented bound (plus one scheduler loop); its run time comes on top.
    queued_after = (parse_time(retried["queued_when"]) - killed_wall).total_seconds()
    assert queued_after <= RECOVERY_BOUND + 10, f"retry queued {queued_after:.0f}s after the kill"
    retry_started = parse_time(retried["start_date"])
    runs = {r.data.tags["symbol"]: r for r in mlflow_runs_of(celery, run_id)}
    assert sorted(runs) == ["AAA", "BBB"] and len(mlflow_runs_of(celery, run_id)) == 2, "one MLflow run per symbol"
    from mlflow import MlflowClient

    client = MlflowClient(celery.mlflow_url)
    for symbol, run in runs.items():
        versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
        assert len(versions) == 1, f"{symbol}: {len(versions)} model versions"
    # The killed try wrote nothing after it stopped: AAA's one model version is either the killed
    # try's, registered before the kill landed (the retry then reuses it: one version, above), or
    # the retry's; and every metric logged after the orphan stopped comes from the retry.
    orphan_gone = killed_wall + dt.timedelta(seconds=orphan_stopped)
    (version,) = client.search_model_versions(f"run_id = '{runs['AAA'].info.run_id}'")
    registered = ms_time(version.creation_timestamp)
    assert not orphan_gone <= registered < retry_started, f"model version registered at {registered}, between the orphan's end and the retry"
    late = [
        (key, ms_time(m.timestamp))
        for key in runs["AAA"].data.metrics
        for m in client.get_metric_history(runs["AAA"].info.run_id, key)
        if orphan_gone <= ms_time(m.timestamp) < retry_started
    ]
    assert not late, f"metrics written between the orphan's end and the retry: {late[:5]}"
    after = counts(celery, webui)
    assert after["runs"] - before["runs"] == 2 and after["model_versions"] - before["model_versions"] == 2
    assert after["artifacts"] == before["artifacts"]  # train_backtest writes no WebUI artifact
    print(
        f"worker kill: orphan stopped after {orphan_stopped:.1f}s, retry queued after {queued_after:.0f}s "
        f"(bound {RECOVERY_BOUND}s + a scheduler loop), run succeeded {recovered:.0f}s after the kill; counts {after}"
    )


def test_webui_down_for_30s_during_persist(celery, webui):
    run_id = trigger(celery, {"symbol": "AAA"})

    def reviewing():
        ti = task_instance(celery, run_id, "review", 0)
        return ti if ti and ti["state"] in ("running", "success") else None

    wait_for("AAA review", celery, 300, reviewing)
    celery.stop("webui")
    down_at = time.monotonic()
    while time.monotonic() - down_at < WEBUI_DOWN_SECONDS:  # the fault's duration
        celery.check_running()
        time.sleep(1)
    start_webui(celery)
    done = wait_terminal(celery, run_id, 300)
    assert done["run"]["state"] == "success", celery.log_tails()
    assert xcom(celery, done, "resolve_symbols", "return_value") == ["AAA"]
    persist = symbol_instances(done)[("persist", 0)]
    assert persist["try_number"] >= 2, "persist never met the WebUI down"
    summary = {row["symbol"]: row for row in xcom(celery, done, "summarize", "summary")["symbols"]}
    artifacts = [a for a in webui.list_artifacts() if a.dag_run_id == run_id]
    assert sorted(a.artifact_type for a in artifacts) == ["llm", "signal"], "one of each, no duplicate"
    assert summary["AAA"]["signal_artifact_id"] in {a.id for a in artifacts}
    print(f"WebUI down {WEBUI_DOWN_SECONDS}s: persist succeeded on try {persist['try_number']}; counts {counts(celery, webui)}")


def test_mlflow_server_restarted_during_training(celery, webui):
    run_id = trigger(celery, {"symbol": "BBB", "mode": "train_backtest", "config": {"trademaster": {"epochs": 50}}})

    def training():
        ti = task_instance(celery, run_id, "train_backtest", 0)
        return ti if ti and ti["state"] == "running" else None

    wait_for("BBB training", celery, 300, training)
    celery.stop("mlflow")
    start_mlflow(celery)
    still = task_instance(celery, run_id, "train_backtest", 0)
    assert still["state"] in ("running", "up_for_retry", "queued", "scheduled"), "training ended before the restart"
    done = wait_terminal(celery, run_id, 300)
    assert done["run"]["state"] == "success", celery.log_tails()
    runs = mlflow_runs_of(celery, run_id)
    assert [r.data.tags["symbol"] for r in runs] == ["BBB"]
    from mlflow import MlflowClient

    assert len(MlflowClient(celery.mlflow_url).search_model_versions(f"run_id = '{runs[0].info.run_id}'")) == 1
    trained = symbol_instances(done)[("train_backtest", 0)]
    print(f"MLflow restarted: training succeeded on try {trained['try_number']}; counts {counts(celery, webui)}")
