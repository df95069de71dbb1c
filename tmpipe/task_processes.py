"""The tasks of ``tmpipe run`` in processes forked from it, a fresh one every few tasks.

By default ``dag.test()`` runs every task inside the process that runs the DAG: what a task leaves
there (Airflow's record of the finished task, caches, pages the allocators keep) stays for the
rest of the run, so memory grew with the number of symbols, and a task that crashed the
interpreter ended the whole run. With ``use_executor=True`` it hands each task to the configured
executor instead. :class:`TaskProcessExecutor` runs them one at a time, as ``dag.test()`` does,
each exactly as ``dag.test()`` would have in place (Airflow's in-process task runner and Execution
API: no server, no network), but in a task process forked from the run process. A task process
runs at most :data:`TASKS_PER_PROCESS` tasks and then exits, taking what they left with it; the
next task gets a fresh one. What tasks leave therefore stays bounded however many symbols a run
has (the run's own task-instance state, which ``dag.test()``'s loop keeps, is Airflow's and grows
with the run: benchmarks/README.md), and a task process that dies fails only the task it was running.

Forking starts each task process with everything the run process imported and parsed. A process
per task was measured first: forking, the pages a new process copies and its first-use costs
(SQL compiled again, MLflow's stores built again) added about 0.2 s to every task.
Airflow's own task supervisor (its Local and Celery workers') parses the DAG again in each task
and notices a task process's end only at its next poll, up to seconds later.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
from multiprocessing import Pipe
from typing import TYPE_CHECKING, Any

from airflow.executors.base_executor import BaseExecutor

from tmpipe.abort import ABORT_LOG, watch_parent
from tmpipe.errors import ERROR_KEY, TaskProcessDied, error_record
from tmpipe.home import tmpipe_home

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from multiprocessing.connection import Connection

log = logging.getLogger(__name__)

TASKS_PER_PROCESS = 16  # then the task process exits: what its tasks left stays bounded

_dags: dict[str, Any] = {}


@contextlib.contextmanager
def running(dag: Any) -> Iterator[None]:
    """While this lasts, task processes run ``dag``'s tasks from this parsed DAG, as ``dag.test()``
    does in place, rather than parsing its file again."""
    _dags[dag.dag_id] = dag
    try:
        yield
    finally:
        _dags.pop(dag.dag_id, None)


class TaskProcessExecutor(BaseExecutor):
    """Runs each queued task to its end, one after another, in a forked task process."""

    is_local = True

    def start(self) -> None:
        self._process: TaskProcess | None = None

    def trigger_tasks(self, open_slots: int) -> None:
        """Every queued task, whatever ``[core] parallelism`` allows at once: they run one at a time
        here, and one left queued would wait for ``dag.test()``'s next pass, which first sleeps a
        second and prints the tasks it waits for."""
        super().trigger_tasks(max(open_slots, len(self.queued_tasks)))

    def _process_workloads(self, workloads: Sequence[Any]) -> None:
        from airflow.executors.workloads import ExecuteTask

        for workload in workloads:
            if not isinstance(workload, ExecuteTask):
                raise TypeError(f"{type(self).__name__} runs tasks only, not {type(workload).__name__}")
            del self.queued_tasks[workload.key]
            self.running.add(workload.key)
            self.change_state(workload.key, *self.run_task(workload))

    def run_task(self, workload: Any) -> tuple[Any, str | None]:
        """The task run to its end in a task process; what the executor reports of it, the state
        and why when it is not the task's own. The scheduler loop reconciles that with the state
        the task recorded: a process that died before recording one fails its task (or sends it
        to its retry), and Airflow's log of that event carries the why."""
        from airflow.utils.state import TaskInstanceState

        if self._process is None:
            self._process = TaskProcess.fork()
        answer = self._process.run(workload.ti.id)
        if self._process.ended is not None:
            self._process = None
        if answer == "ran":
            return TaskInstanceState.SUCCESS, None
        died = answer.startswith("ended with")
        why = f"its process {answer}" if died else answer
        log.error("task %s (map index %s): %s", workload.ti.task_id, workload.ti.map_index, why)
        if died:
            try:
                _record_death(workload.ti, why)
            except Exception:  # the summary then says only that the symbol stopped short
                log.exception("task %s: its error record could not be stored", workload.ti.task_id)
        return TaskInstanceState.FAILED, why

    def end(self) -> None:
        """The task process told to exit, and waited for: each task ran to its end inside ``heartbeat()``."""
        if self._process is not None:
            self._process.stop()
            self._process = None

    def terminate(self) -> None:
        self.end()


class TaskProcess:
    """A forked process that runs the task instances it is sent, one at a time, until it has run
    :data:`TASKS_PER_PROCESS` or is told to stop. ``ended`` says how it ended, once it has."""

    def __init__(self, pid: int, channel: Connection) -> None:
        self.pid, self.channel = pid, channel
        self.tasks = 0
        self.ended: str | None = None

    @classmethod
    def fork(cls) -> TaskProcess:
        ours, theirs = Pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            ours.close()
            _serve(theirs)
        theirs.close()
        return cls(pid, ours)

    def run(self, ti_id: Any) -> str:
        """``ran`` (the task recorded its own state), ``not run: ...``, or ``ended with ...`` when
        the process died during the task."""
        try:
            self.channel.send(ti_id)
            answer: str = self.channel.recv()
        except (EOFError, OSError):
            self._reap()
            return f"ended with {self.ended}"
        self.tasks += 1
        if self.tasks >= TASKS_PER_PROCESS:
            self._reap()
        return answer

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.channel.send(None)
        self._reap()

    def _reap(self) -> None:
        self.channel.close()
        _, status = os.waitpid(self.pid, 0)
        self.ended = _how_it_ended(os.waitstatus_to_exitcode(status))


def _record_death(ti: Any, message: str) -> None:
    """The error record the task would have pushed had it failed on its own, so that the run's
    summary says how it ended rather than only that its symbol stopped short."""
    from airflow.models.xcom import XComModel
    from airflow.sdk.bases.xcom import BaseXCom
    from airflow.utils.session import create_session

    record = error_record(TaskProcessDied(message), stage=ti.task_id.rsplit(".", 1)[-1])
    with create_session() as session:  # stored as the task's own push stores it (the Task SDK's serde)
        XComModel.set(key=ERROR_KEY, value=BaseXCom.serialize_value(record), dag_id=ti.dag_id, task_id=ti.task_id,
                      run_id=ti.run_id, map_index=ti.map_index, serialize=False, session=session)


def _how_it_ended(exit_code: int) -> str:
    if exit_code >= 0:
        return f"exit code {exit_code}"
    try:
        return f"signal {-exit_code} ({signal.Signals(-exit_code).name})"
    except ValueError:
        return f"signal {-exit_code}"


def _serve(channel: Connection) -> None:
    """In the task process: run each task instance sent until done, then exit.

    Exit handlers the run process registered are not run here (they are its own); those its tasks
    register are. A task that fails is still ``ran``: its state is recorded. Should the run
    process die or be interrupted, this one stops within seconds, as a Celery worker's orphaned
    task process does (tmpipe.abort).
    """
    atexit._clear()  # as Airflow's own forked task processes do
    # Ctrl-C at a terminal reaches the whole process group: the run process handles it, and this
    # one then stops as an orphan (below) rather than failing its task with a traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a run process that is killed must not leave this one writing to MLflow and the WebUI
    watch_parent(tmpipe_home() / ABORT_LOG, "task process of tmpipe run")
    code = 0
    try:
        for _ in range(TASKS_PER_PROCESS):
            try:
                ti_id = channel.recv()
            except EOFError:  # the run process is gone
                break
            if ti_id is None:
                break
            answer = _run_task_instance(ti_id)
            try:
                channel.send(answer)
            except OSError:  # the run process ended (interrupted, killed) while the task ran
                break
    except BaseException:  # reported here, the process's last words
        log.exception("task process %s failed", os.getpid())
        code = 1
    finally:
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _run_task_instance(ti_id: Any) -> str:
    """Run one task instance as ``dag.test()`` does in place."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.get(TaskInstance, ti_id)
        if ti is None:
            return f"not run: task instance {ti_id} is not in the metadata database"
        session.expunge(ti)
    dag = _dags.get(ti.dag_id)
    if dag is None or ti.task_id not in dag.task_dict:
        return f"not run: {ti.task_id} is not a task of a DAG the run process parsed"
    _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
    return "ran"
