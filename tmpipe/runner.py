"""``tmpipe run``: one DAG run through ``dag.test()``, its tasks in task processes forked from
this one (tmpipe.task_processes), with the backends the spec resolves to (the embedded ones by
default; demo symbols are seeded only into the embedded store).

Airflow reads its settings at import, so the environment is set first, the metadata DB is
migrated in a child process, and Airflow is imported only inside these functions.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tmpipe import airflow_env
from tmpipe.errors import DagImportError
from tmpipe.home import tmpipe_home
from tmpipe.redaction import UrlCredentialsFilter
from tmpipe.spec.loader import load_spec
from tmpipe.spec.model import Spec

log = logging.getLogger(__name__)

SUMMARY_TASK = "summarize"


@dataclass(frozen=True)
class RunOutcome:
    dag_run_id: str
    state: str
    summary: dict[str, Any]
    tracking_uri: str | None

    @property
    def ok(self) -> bool:
        return self.state == "success"


MIGRATED_STAMP = "tmpipe-migrated.json"


def prepare_home(home: Path, spec_path: Path) -> None:
    """Airflow's environment for ``home`` applied and its metadata DB migrated."""
    env = airflow_env.embedded_airflow_env(home)
    airflow_env.apply(env)
    os.environ["TMPIPE_SPEC"] = str(spec_path.absolute())
    database = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    stamp = database.with_name(MIGRATED_STAMP)
    state = _migration_state(database)
    if state is not None and state == _read_stamp(stamp):
        return  # `airflow db migrate` starts Airflow in a new process (~5 s) only to find nothing to do
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, text=True)
    stamp.write_text(json.dumps(_migration_state(database)))


def _migration_state(database: Path) -> dict[str, str] | None:
    """The installed Airflow's version and the database's Alembic revision; None without a database."""
    if not database.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            revisions = [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.Error:
        return None
    return {"airflow": metadata.version("apache-airflow"), "revision": ",".join(sorted(revisions))} if revisions else None


def _read_stamp(stamp: Path) -> dict[str, str] | None:
    """What the last migration by ``tmpipe run`` left: the state it migrated to."""
    try:
        return json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None


def seed_demo_symbols(spec: Spec, store) -> list[str]:
    """The spec's demo symbols, linked to its DAG, while no symbol is linked to that DAG yet.

    Each spec seeds its own: a store another spec's run already seeded still gets this DAG's
    links. A symbol that exists keeps its priority and state; once any symbol is linked to the
    DAG, the operator's list stands and nothing is added back.
    """
    existing = store.list_workflow_symbols(enabled_only=False)
    if any(link.dag_id == spec.dag.dag_id for entry in existing for link in entry.links):
        return []
    known = {entry.symbol for entry in existing}
    for priority, symbol in enumerate(spec.demo_symbols):
        if symbol not in known:
            store.add_symbol(symbol, priority=priority)
        store.add_link(symbol, spec.dag.dag_id, notes="demo symbol seeded by tmpipe run")
    return list(spec.demo_symbols)


def run_local(spec_path: Path, conf: dict[str, Any], logical_date: datetime | None = None) -> RunOutcome:
    """Trigger one DAG run in-process and collect its summary.

    The run id derives from ``logical_date``; running again with the same date re-runs that
    DAG run (Airflow replaces it), which is how a cleared run is repeated locally.
    """
    home = tmpipe_home()
    prepare_home(home, spec_path)
    spec = load_spec(spec_path)
    from tmpipe.config.resolver import resolve_shared
    from tmpipe.store.factory import open_store

    shared = resolve_shared(spec, conf_config=conf.get("config"))
    if shared.webui.backend == "embedded":
        seed_demo_symbols(spec, open_store(shared.webui))

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(airflow_env.installed_dags_folder()))
    if bag.import_errors:
        raise DagImportError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(spec.dag.dag_id)
    from tmpipe.in_process_api import build_for_sdk_version

    build_for_sdk_version()
    _import_for_tasks()
    _show_progress()
    when = logical_date or datetime.now(timezone.utc)
    from tmpipe import task_processes
    from tmpipe.tracking import resolve_tracking_uri
    from tmpipe.tracking.runs import client_before_fork

    tracking_uri = resolve_tracking_uri(shared.mlflow, home)
    try:
        client_before_fork(tracking_uri)
    except Exception as exc:  # a store that cannot be reached now is the tasks' to report, per symbol
        log.debug("MLflow client not built before the tasks: %s", exc)

    # the tasks in forked task processes, by the executor that [core] executor names
    with task_processes.running(dag), _long_lived_objects_frozen():
        dag_run = dag.test(run_conf=conf, logical_date=when, run_after=when, use_executor=True)
    summary = read_summary(dag.dag_id, dag_run.run_id) or states_summary(dag_run, conf.get("mode") or spec.default_mode)
    return RunOutcome(dag_run.run_id, str(dag_run.state), summary, tracking_uri)


# What the tasks import on first use (the engine, the review team, MLflow with its SQL stores and
# plots), imported once by the run process so that every forked task process starts with them.
TASK_IMPORTS = (
    "alembic.config",
    "autogen_agentchat.agents",
    "autogen_agentchat.teams",
    "matplotlib.backends.backend_agg",
    "matplotlib.figure",
    "mlflow",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "threadpoolctl",
    "tmpipe.engine.api",
    "tmpipe.engine.builtin",
    "tmpipe.review.reviewer",
    "tmpipe.signals.service",
    "tmpipe.tracking.bundle_model",
    "tmpipe.tracking.plots",
)


def _import_for_tasks() -> None:
    """Import :data:`TASK_IMPORTS` where they can be; one that cannot fails in its task, as it would have."""
    for module in TASK_IMPORTS:
        try:
            importlib.import_module(module)
        except Exception as exc:
            log.debug("not imported for the tasks: %s (%s)", module, exc)


@contextlib.contextmanager
def _long_lived_objects_frozen():
    """The objects alive now (Airflow, dag-factory, the project and what its tasks import, the
    DagBag, the in-process Execution API) kept out of the garbage collector's traversals.

    A full collection traverses every tracked object, close to a million here, and each forked task
    process would also copy every page a traversal touches. Frozen, they are skipped in the run
    process and in every task process it forks. Unfrozen again afterwards, so a caller's later
    collections see it all.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _show_progress() -> None:
    """tmpipe's own INFO lines (stages, epochs) on stderr while Airflow stays at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    handler.addFilter(UrlCredentialsFilter())
    progress = logging.getLogger("tmpipe")
    progress.handlers[:] = [handler]
    progress.setLevel(logging.INFO)
    progress.propagate = False
    loop = logging.getLogger("airflow.sdk.definitions.dag")  # dag.test()'s own logger
    loop.filters[:] = [f for f in loop.filters if not isinstance(f, RetryWaitLines)] + [RetryWaitLines()]


class RetryWaitLines(logging.Filter):
    """One line saying which tasks wait for their retry, instead of ``dag.test()``'s warning every
    second of the wait that lists every task that cannot run yet (kilobytes a line at 50 symbols).

    Shown again only when the waiting tasks change. Any other such warning (nothing waits for a
    retry) passes unchanged: it would mean a task the loop left behind.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: list[str] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "No tasks to run. unrunnable tasks: %s" or not isinstance(record.args, tuple) or not record.args:
            return True
        unrunnable: Iterable[Any] = record.args[0]  # type: ignore[assignment]  # the loop's task instances
        waiting = sorted(
            ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            for ti in unrunnable
            if str(ti.state) == "up_for_retry"
        )
        if not waiting:
            return True
        if waiting != self._shown:
            log.info("waiting for the retry delay (dag.retry_delay_seconds) of %s", ", ".join(waiting))
            self._shown = waiting
        return False


def read_summary(dag_id: str, run_id: str) -> dict[str, Any] | None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run_id, key="summary", task_ids=SUMMARY_TASK, dag_ids=dag_id)
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None


def states_summary(dag_run, mode: str) -> dict[str, Any]:
    """When summarize itself never ran: say which tasks failed."""
    failed = [ti.task_id for ti in dag_run.get_task_instances() if str(ti.state) in ("failed", "upstream_failed")]
    return {
        "mode": mode,
        "symbols": [],
        "error": f"no summary; failed tasks: {', '.join(failed) or 'none'}",
        "dropped_symbols": [],
        "no_symbols": None,
    }
