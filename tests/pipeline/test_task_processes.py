"""`tmpipe run` runs its tasks in task processes forked from the run process with its long-lived
objects frozen, a fresh one every TASKS_PER_PROCESS tasks; a task process that dies fails its own
task's symbol only; the user sees the run's progress and none of Airflow's deprecation warnings
about itself.

Observed from inside one real run of two symbols: an Airflow listener plugin notes, in each task
process as its task starts, the process, its parent and the objects frozen there, and kills the
process that runs BBB's train_backtest, as the kernel's OOM killer or a crash in native code would.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from .conftest import DAG_ID, spec_file, webui_artifacts

pytestmark = pytest.mark.slow

PLUGIN = '''
import gc, json, os, signal, time
from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

class TaskProcesses:
    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance):
        task = f"{task_instance.task_id}[{task_instance.map_index}]"
        with open(os.environ["TASK_PROBE_LOG"], "a") as log:
            log.write(json.dumps({"task": task, "pid": os.getpid(), "ppid": os.getppid(), "frozen": gc.get_freeze_count()}) + "\\n")
        if task == os.environ.get("TASK_PROBE_KILL") and task_instance.try_number == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        if task == os.environ.get("TASK_PROBE_HOLD"):
            time.sleep(120)

class TaskProcessesPlugin(AirflowPlugin):
    name = "task_processes_probe"
    listeners = [TaskProcesses()]
'''

KILLED = "symbol_chain.train_backtest[1]"  # BBB's: map indexes follow the order of --symbols


def probed_home(folder, migrated_home_copy):
    """A fresh home under ``folder`` and the environment of a `tmpipe run` there under the probe plugin; the probe's log."""
    home = migrated_home_copy(folder / "home")
    plugins = folder / "plugins"
    plugins.mkdir()
    (plugins / "task_processes_probe.py").write_text(textwrap.dedent(PLUGIN))
    probe_log = folder / "probe.jsonl"
    env = {**os.environ, "TMPIPE_HOME": str(home), "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins), "TASK_PROBE_LOG": str(probe_log)}
    return home, env, probe_log


@pytest.fixture(scope="module")
def probed_run(tmp_path_factory, migrated_home_copy):
    """One `tmpipe run` of AAA and BBB in mode both (1 epoch) under the probe: exit code, output, probe lines, home."""
    folder = tmp_path_factory.mktemp("task_processes")
    home, env, probe_log = probed_home(folder, migrated_home_copy)
    result = subprocess.run(
        [sys.executable, "-m", "tmpipe", "run", "--spec", str(spec_file(folder)), "--symbols", "AAA,BBB", "--mode", "both", "--json"],
        capture_output=True, text=True, timeout=900, env={**env, "TMPIPE__TRADEMASTER__EPOCHS": "1", "TASK_PROBE_KILL": KILLED},
    )
    tasks = [json.loads(line) for line in probe_log.read_text().splitlines()]
    return result, tasks, home


def test_tasks_run_in_processes_forked_from_the_run_and_a_killed_one_is_replaced(probed_run):
    _, tasks, _ = probed_run
    # resolve_symbols, four stages of AAA, BBB's train_backtest (killed), score_signals and summarize
    assert len(tasks) == 8, tasks
    [run_process] = {task["ppid"] for task in tasks}
    killed = [task["task"] for task in tasks].index(KILLED)
    first, rest = tasks[:killed + 1], tasks[killed + 1:]
    # the first process ran tasks until it was killed; the next task started a fresh one
    assert len({task["pid"] for task in first}) == 1 and len({task["pid"] for task in rest}) == 1, tasks
    assert first[0]["pid"] != rest[0]["pid"] and run_process not in (first[0]["pid"], rest[0]["pid"])


def test_a_task_process_runs_a_bounded_number_of_tasks(tmp_path, migrated_home_copy, airflow_settings):
    """Past TASKS_PER_PROCESS tasks the next task gets a fresh process: what tasks leave in a
    process stays bounded however many symbols a run has. With [core] parallelism below the
    tasks scheduled at once, none waits for dag.test()'s next pass (a second's sleep and a
    warning on stdout listing the tasks it waits for)."""
    from tmpipe.task_processes import TASKS_PER_PROCESS  # imports Airflow: after airflow_settings set its environment

    _, env, probe_log = probed_home(tmp_path, migrated_home_copy)
    symbols = [f"S{i:02d}" for i in range(TASKS_PER_PROCESS // 4 + 1)]  # four stages each: more tasks than one process runs
    spec = spec_file(tmp_path, symbols={symbol: {"data": {"demo_series": "synthetic"}} for symbol in symbols},
                     limits={"max_symbols": len(symbols)})
    result = subprocess.run(
        [sys.executable, "-m", "tmpipe", "run", "--spec", str(spec), "--symbols", ",".join(symbols), "--mode", "both", "--json"],
        capture_output=True, text=True, timeout=900, env={**env, "TMPIPE__TRADEMASTER__EPOCHS": "1", "AIRFLOW__CORE__PARALLELISM": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "No tasks to run" not in result.stdout + result.stderr
    assert json.loads(result.stdout)["state"] == "success"  # stdout is the summary alone
    pids = [json.loads(line)["pid"] for line in probe_log.read_text().splitlines()]
    assert len(pids) == 4 * len(symbols) + 3
    runs = [pids[i:i + TASKS_PER_PROCESS] for i in range(0, len(pids), TASKS_PER_PROCESS)]
    assert all(len(set(run)) == 1 for run in runs), pids  # each process ran TASKS_PER_PROCESS tasks in a row
    assert len({run[0] for run in runs}) == len(runs) > 1, pids  # and each next run of tasks had a new one


def test_a_task_process_starts_with_the_run_processes_long_lived_objects_frozen(probed_run):
    """Airflow, MLflow and the project imported and frozen before the first fork: a collection in a
    task process skips them, and does not copy the pages they lie on."""
    _, tasks, _ = probed_run
    assert min(task["frozen"] for task in tasks) > 200_000, tasks


def test_a_killed_task_process_fails_its_symbol_only(probed_run):
    result, _, home = probed_run
    assert result.returncode == 1, result.stderr[-3000:]
    out = json.loads(result.stdout)  # stdout is the summary alone: Airflow's error line about the task went to stderr
    assert out["state"] == "failed"
    rows = {row["symbol"]: row for row in out["symbols"]}
    assert rows["AAA"]["status"] == "success" and rows["AAA"]["signal_artifact_id"] is not None
    assert rows["BBB"]["status"] == "failed" and rows["BBB"]["signal_artifact_id"] is None
    assert rows["BBB"]["error"] == "train_backtest: TaskProcessDied: its process ended with signal 9 (SIGKILL)"
    assert "symbol_chain.train_backtest (map index 1): its process ended with signal 9 (SIGKILL)" in result.stderr
    assert {(a.symbol, a.artifact_type) for a in webui_artifacts(home)} == {("AAA", "signal"), ("AAA", "llm")}


def test_a_task_process_that_died_is_retried_when_the_spec_allows_it(tmp_path, migrated_home_copy):
    """With `dag.retries`, a task whose process died (the OOM killer, a crash in native code) runs
    again after the retry delay and its symbol succeeds. The wait shows as one line naming the
    task (not dag.test()'s warning each second listing every task), Airflow's own log of the
    event says how the process ended, and stdout stays the run's JSON alone.

    One symbol, so that nothing else can run during the delay: the loop waits, whatever the
    machine's load (with a second symbol, its own tasks could outlast the delay)."""
    home, env, probe_log = probed_home(tmp_path, migrated_home_copy)
    killed = "symbol_chain.train_backtest[0]"
    spec = spec_file(tmp_path, dag={"dag_id": DAG_ID, "retries": 1, "retry_delay_seconds": 5})
    result = subprocess.run(
        [sys.executable, "-m", "tmpipe", "run", "--spec", str(spec), "--symbols", "AAA", "--json"],
        capture_output=True, text=True, timeout=900, env={**env, "TMPIPE__TRADEMASTER__EPOCHS": "1", "TASK_PROBE_KILL": killed},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    # the retry's success stands alone: the died try's error record does not linger in the summary
    assert out["state"] == "success"
    assert [(row["symbol"], row["status"], row["error"]) for row in out["symbols"]] == [("AAA", "success", None)]
    assert [json.loads(line)["task"] for line in probe_log.read_text().splitlines()].count(killed) == 2  # killed, then retried
    assert result.stderr.count(f"waiting for the retry delay (dag.retry_delay_seconds) of {killed}") == 1, result.stderr[-3000:]
    assert "No tasks to run" not in result.stderr
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        [(extra,)] = db.execute("SELECT extra FROM log WHERE event = 'state mismatch'").fetchall()
    assert extra.endswith("Extra info: its process ended with signal 9 (SIGKILL)"), extra


def test_the_run_shows_its_progress_and_no_airflow_deprecation_warning_about_airflow_itself(probed_run):
    result, _, _ = probed_run
    assert "AAA train_backtest: MLflow run" in result.stderr  # written by a task process, to the run's stderr
    output = result.stdout + result.stderr
    assert "determine_kwargs" not in output and "DeprecatedImportWarning" not in output, output[-3000:]


def test_a_killed_run_stops_its_task_process_before_it_writes_more(tmp_path, migrated_home_copy):
    """`kill -9` of `tmpipe run` (or the OOM killer) while a task runs: its task process notices
    within seconds, notes it in aborted-tasks.log and exits instead of going on with the task."""
    home, env, probe_log = probed_home(tmp_path, migrated_home_copy)
    run = subprocess.Popen(
        [sys.executable, "-m", "tmpipe", "run", "--spec", str(spec_file(tmp_path)), "--symbols", "AAA", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**env, "TASK_PROBE_HOLD": "symbol_chain.train_backtest[0]"},
    )
    try:
        held = held_task(run, probe_log)
        assert held["ppid"] == run.pid
    finally:
        run.kill()
        run.wait()
    wait_until_ended(held["pid"], "the task process outlived its run by 10 s")
    marker = (home / "logs" / "aborted-tasks.log").read_text()
    assert f"pid={held['pid']} task process of tmpipe run: supervisor pid {run.pid} died" in marker


def test_ctrl_c_ends_the_run_at_once_and_its_task_process_as_an_orphan(tmp_path, migrated_home_copy):
    """Ctrl-C at a terminal (SIGINT to the whole process group) while a task runs: `tmpipe run`
    exits 130 with one line and no traceback; its task process, which leaves SIGINT to the run,
    stops within seconds as an orphan and notes it in aborted-tasks.log."""
    home, env, probe_log = probed_home(tmp_path, migrated_home_copy)
    run = subprocess.Popen(
        [sys.executable, "-m", "tmpipe", "run", "--spec", str(spec_file(tmp_path)), "--symbols", "AAA", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**env, "TASK_PROBE_HOLD": "symbol_chain.train_backtest[0]"},
    )
    try:
        held = held_task(run, probe_log)
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 130, err[-3000:]
    assert out == "" and "Traceback" not in err, err[-3000:]
    assert "interrupted: the run stopped unfinished; a task still running stops within about a second" in err, err[-3000:]
    wait_until_ended(held["pid"], "the task process outlived its interrupted run by 10 s")
    marker = (home / "logs" / "aborted-tasks.log").read_text()
    assert f"pid={held['pid']} task process of tmpipe run: supervisor pid {run.pid} died" in marker


def held_task(run: subprocess.Popen, probe_log) -> dict:
    """The probe's line for the task TASK_PROBE_HOLD holds, once its task process has started it."""
    deadline = time.monotonic() + 300
    while "train_backtest" not in (probe_log.read_text() if probe_log.exists() else ""):
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before its train_backtest started"
        time.sleep(0.2)
    return json.loads(probe_log.read_text().splitlines()[-1])


def wait_until_ended(pid: int, message: str, seconds: float = 10) -> None:
    """Wait for process ``pid`` to end (gone or a zombie); fail with ``message`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        assert time.monotonic() < deadline, message
        time.sleep(0.2)
