"""Get-or-create against a real SQLite store, run status, and concurrent processes."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tmpipe.errors import TrackingError
from tmpipe.tracking import (
    client_for,
    embedded_tracking_uri,
    end_run,
    get_or_create_run,
    set_tags,
    stage_run,
)
from tmpipe.tracking.run_identity import sqlite_path


def _active_runs(tracking_uri: str, experiment_id: str) -> list:
    return client_for(tracking_uri).search_runs([experiment_id])


def test_get_or_create_twice_gives_one_run(context_factory, tracking_uri, tmp_path):
    first = get_or_create_run(context_factory())
    retried = get_or_create_run(context_factory(try_number=2))
    assert retried == first
    assert first.run_name == "AAPL-20240501T123000"
    assert len(_active_runs(tracking_uri, first.experiment_id)) == 1
    run = client_for(tracking_uri).get_run(first.run_id)
    assert run.data.tags["airflow.try_number"] == "2"
    assert run.data.tags["airflow.task_url"].startswith("http://127.0.0.1:8080/")
    # the embedded store keeps artifacts under TMPIPE_HOME, not in the worker's CWD
    assert first.artifact_uri.startswith(str(tmp_path / "home" / "mlflow" / "artifacts"))


def test_other_symbol_or_dag_run_gets_its_own_run(context_factory, tracking_uri):
    base = get_or_create_run(context_factory())
    other_symbol = get_or_create_run(context_factory(symbol="MSFT"))
    other_dag_run = get_or_create_run(context_factory(dag_run_id="manual__2024-05-02T00:00:00+00:00"))
    assert len({base.run_id, other_symbol.run_id, other_dag_run.run_id}) == 3
    assert len(_active_runs(tracking_uri, base.experiment_id)) == 3


def test_stage_run_sets_terminal_status(context_factory, tracking_uri):
    client = client_for(tracking_uri)
    with stage_run(context_factory(), last_stage=False) as run:
        pass
    assert client.get_run(run.run_id).info.status == "RUNNING"
    with pytest.raises(ValueError, match="bad bars"), stage_run(context_factory(), last_stage=False):
        raise ValueError("bad bars")
    assert client.get_run(run.run_id).info.status == "FAILED"
    # the cleared task reopens the same run and finishes it
    with stage_run(context_factory(try_number=2), last_stage=True) as again:
        assert client.get_run(again.run_id).info.status == "RUNNING"
    assert again.run_id == run.run_id
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_a_stage_leaves_no_artifact_repository_cached_for_its_run(context_factory, tracking_uri, tmp_path):
    """MLflow caches one artifact repository (a thread pool and a queue) per run for the life of the
    process; in `tmpipe run` one process runs every symbol's stages, so each stage drops its own."""
    from mlflow.tracking._tracking_service import utils

    note = tmp_path / "note.txt"
    note.write_text("stage output")
    for last_stage in (False, True):
        with stage_run(context_factory(), last_stage=last_stage) as run:
            client_for(tracking_uri).log_artifact(run.run_id, str(note))
            assert run.run_id in utils._artifact_repos_cache  # MLflow's cache, under the name we drop from
        assert run.run_id not in utils._artifact_repos_cache
    with pytest.raises(ValueError, match="bad bars"), stage_run(context_factory(symbol="MSFT"), last_stage=False) as failed:
        client_for(tracking_uri).log_artifact(failed.run_id, str(note))
        raise ValueError("bad bars")
    assert failed.run_id not in utils._artifact_repos_cache
    # the artifacts are where they were logged, and a later stage reaches them again
    assert [a.path for a in client_for(tracking_uri).list_artifacts(run.run_id)] == ["note.txt"]


def test_end_run_rejects_non_terminal_status(context_factory, tracking_uri):
    run = get_or_create_run(context_factory())
    with pytest.raises(TrackingError, match="terminal"):
        end_run(tracking_uri, run.run_id, "RUNNING")


_WORKER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests_dir!r})
    from conftest import make_context
    from tmpipe.tracking import get_or_create_run, set_tags
    refs = []
    for symbol in ("AAPL", "MSFT", "SPY"):
        ref = get_or_create_run(make_context({uri!r}, symbol, try_number={worker}))
        set_tags({uri!r}, ref.run_id, {{"worker.{worker}": "seen"}})
        refs.append(ref.run_id)
    print(json.dumps(refs))
    """
)


@pytest.mark.slow
def test_concurrent_processes_share_one_fresh_sqlite_store(tmp_path):
    """Three processes hit a store that does not exist yet: no lock errors, one run per symbol."""
    tracking_uri = embedded_tracking_uri(tmp_path / "fresh")
    tests_dir = str(Path(__file__).parent)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER.format(tests_dir=tests_dir, uri=tracking_uri, worker=n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1] == outputs[2]
    runs = client_for(tracking_uri).search_runs(
        [client_for(tracking_uri).get_experiment_by_name("tmpipe-tests").experiment_id]
    )
    assert sorted(r.data.tags["symbol"] for r in runs) == ["AAPL", "MSFT", "SPY"]
    for run in runs:
        assert {"worker.0", "worker.1", "worker.2"} <= set(run.data.tags)


MLFLOW_BUSY_TIMEOUT = "PRAGMA busy_timeout = 20000;"  # what MLflow sets on every SQLite session


@pytest.fixture
def short_sqlite_busy_timeout():
    """MLflow's SQLite sessions wait 1 s, not 20 s, for a lock before "database is locked": the
    retry under test begins only then. Fails if MLflow no longer sets the timeout this way."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    rewritten = []

    def shorten(conn, cursor, statement, parameters, context, executemany):
        if statement == MLFLOW_BUSY_TIMEOUT:
            rewritten.append(statement)
            return "PRAGMA busy_timeout = 1000;", parameters
        return statement, parameters

    event.listen(Engine, "before_cursor_execute", shorten, retval=True)
    yield
    event.remove(Engine, "before_cursor_execute", shorten)
    assert rewritten, f"MLflow did not set {MLFLOW_BUSY_TIMEOUT!r}: the test waited for nothing it knows of"


@pytest.mark.slow
def test_locked_sqlite_store_is_retried(context_factory, tracking_uri, short_sqlite_busy_timeout):
    """Another process holds the database lock; the write waits, retries and lands."""
    run = get_or_create_run(context_factory())
    holder = sqlite3.connect(str(sqlite_path(tracking_uri)), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    released = []

    class ReleaseOnRetry(logging.Handler):
        def emit(self, record):
            if not released:
                holder.execute("ROLLBACK")
                released.append(record.getMessage())

    handler = ReleaseOnRetry(level=logging.WARNING)
    logging.getLogger("tmpipe.tracking.retry").addHandler(handler)
    try:
        set_tags(tracking_uri, run.run_id, {"after.lock": "yes"})
    finally:
        logging.getLogger("tmpipe.tracking.retry").removeHandler(handler)
        holder.close()
    assert len(released) == 1 and "database is locked" in released[0]
    assert client_for(tracking_uri).get_run(run.run_id).data.tags["after.lock"] == "yes"
