"""score_signals: grade the run's symbols' earlier signals whose horizon has elapsed (tmpipe.signals)."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from tmpipe.config.resolver import resolve_shared
from .base import TmpipeOperator
from .stages import RESOLVE_TASK_ID
from .symbols import LINKS_KEY
from tmpipe.pipeline.context import RunContext


class ScoreSignalsOperator(TmpipeOperator):
    """Runs after the symbols' chains whatever their outcome; summarize reports what it graded."""

    def run_stage(self, ctx: RunContext, context: Any) -> dict[str, Any]:
        from tmpipe.signals.service import score_run

        ti = context["ti"]
        symbols = ti.xcom_pull(task_ids=RESOLVE_TASK_ID)
        if symbols is None:
            raise AirflowSkipException(f"{RESOLVE_TASK_ID} did not succeed: no symbols to score")
        # The symbols' stages resolved their config with dag_run.conf and their WebUI link: so does scoring.
        links = ti.xcom_pull(task_ids=RESOLVE_TASK_ID, key=LINKS_KEY) or {}
        conf_config = ctx.conf.get("config")
        webui = resolve_shared(ctx.spec, conf_config=conf_config).webui
        return score_run(ctx.spec, symbols, dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id, webui=webui,
                         connection_lookup=ctx.connection_lookup, conf_config=conf_config, links=links)
