"""Shared plumbing of the thin stage operators: Airflow context in, one core call, small XCom out."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from tmpipe.abort import ABORT_LOG, watch_parent
from tmpipe.errors import ERROR_KEY, describe, error_record
from tmpipe.home import tmpipe_home
from tmpipe.pipeline.context import RunContext


def watch_supervisor(ctx: RunContext, task_id: str) -> None:
    """In a task process forked by Airflow's supervisor, stop within seconds once the supervisor dies.

    A killed Celery worker takes its pool process (the supervisor) with it; the forked task
    process would otherwise go on writing. ``dag.test()``'s in-process task runner has no supervisor:
    under ``tmpipe run`` its task processes watch the run process instead (tmpipe.task_processes).
    """
    from airflow.sdk.execution_time import comms, task_runner

    if not isinstance(getattr(task_runner, "SUPERVISOR_COMMS", None), comms.CommsDecoder):
        return
    task_label = f"{ctx.dag_id} {ctx.dag_run_id} {task_id}[{ctx.map_index}] try {ctx.try_number}"
    watch_parent(tmpipe_home() / ABORT_LOG, task_label)


def connection_lookup(conn_id: str) -> tuple[str | None, str | None]:
    """(base URL, secret) of an Airflow connection; the secret never goes to XCom or logs."""
    conn = BaseHook.get_connection(conn_id)
    base_url = None
    if conn.host:
        scheme = conn.schema or "http"
        base_url = conn.host if "://" in conn.host else f"{scheme}://{conn.host}"
        if conn.port:
            base_url = f"{base_url}:{conn.port}"
    return base_url, conn.password


def run_context(context: Any, spec_path: str) -> RunContext:
    ti = context["ti"]
    dag_run = context["dag_run"]
    logical_date = context.get("logical_date")
    return RunContext(
        dag_id=ti.dag_id,
        dag_run_id=ti.run_id,
        logical_date=logical_date.isoformat() if logical_date else None,
        conf=dict(dag_run.conf or {}),
        spec_path=spec_path,
        map_index=ti.map_index if ti.map_index is not None else -1,
        try_number=ti.try_number or 1,
        task_url=getattr(ti, "log_url", None),
        connection_lookup=connection_lookup,
    )


class TmpipeOperator(BaseOperator):
    """Runs ``run_stage``; a failure leaves its structured record in XCom for the summary.

    Errors that another try cannot fix (bad data, a bad spec) fail without retries.
    """

    ui_color = "#e8f1fb"

    def __init__(self, *, spec_path: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec_path = spec_path

    def run_stage(self, ctx: RunContext, context: Any) -> Any:
        raise NotImplementedError

    def execute(self, context: Any) -> Any:
        ctx = run_context(context, self.spec_path)
        watch_supervisor(ctx, self.task_id)
        try:
            return self.run_stage(ctx, context)
        except AirflowSkipException:
            raise  # a stage the mode does not run is not an error
        except Exception as exc:
            record = error_record(exc, stage=self.stage_name, symbol=self.symbol_name)
            context["ti"].xcom_push(key=ERROR_KEY, value=record)
            if not record["retryable"]:
                raise AirflowFailException(describe(record)) from exc
            raise

    @property
    def stage_name(self) -> str:
        """What an error record names as the failed stage."""
        return self.task_id

    @property
    def symbol_name(self) -> str | None:
        return None
