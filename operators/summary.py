"""summarize: one row per symbol, written even when symbols failed; then fail the run if anything did."""

from __future__ import annotations

from typing import Any, Sequence

from airflow.sdk.exceptions import AirflowFailException

from tmpipe.errors import ERROR_KEY, describe
from .base import TmpipeOperator
from tmpipe.generator import SCORE_TASK_ID
from .stages import RESOLVE_TASK_ID
from .symbols import SELECTION_KEY
from tmpipe.pipeline.context import RunContext
from tmpipe.pipeline.modes import STAGES
from tmpipe.pipeline.summary import StageOutputs, render_table, run_failure, summarize_symbols

SUMMARY_KEY = "summary"


class SummarizeOperator(TmpipeOperator):
    def __init__(self, *, chain_group_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.chain_group_id = chain_group_id

    def run_stage(self, ctx: RunContext, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        symbols = ti.xcom_pull(task_ids=RESOLVE_TASK_ID)
        error: str | None = None
        selection: dict[str, Any] = {}
        if symbols is None:  # resolve_symbols did not succeed: the run has failed whatever else happened
            record = ti.xcom_pull(task_ids=RESOLVE_TASK_ID, key=ERROR_KEY)
            error = f"{RESOLVE_TASK_ID}: {describe(record) if record else 'did not return a symbol list'}"
        else:
            selection = ti.xcom_pull(task_ids=RESOLVE_TASK_ID, key=SELECTION_KEY) or {}
        outputs = []
        for index, symbol in enumerate(symbols or []):
            results = self._pull(ti, index, "return_value", STAGES)
            # Only stages without a result can have failed; pulling absent keys is logged loudly.
            errors = self._pull(ti, index, ERROR_KEY, [stage for stage in STAGES if results[stage] is None])
            outputs.append(StageOutputs(symbol, results, errors))
        summary = summarize_symbols(
            outputs, mode=ctx.mode, run_error=error, dropped_symbols=selection.get("dropped"), no_symbols=selection.get("no_symbols")
        )
        summary["signal_scores"] = ti.xcom_pull(task_ids=SCORE_TASK_ID)  # None when scoring was skipped or failed
        self.log.info("summary of %s\n%s", ctx.dag_run_id, render_table(summary))
        ti.xcom_push(key=SUMMARY_KEY, value=summary)
        # summarize is the DAG's only leaf, so its state is the run's state.
        failure = run_failure(summary)
        if failure:
            raise AirflowFailException(failure)
        return {"symbols": len(summary["symbols"]), "failed": 0}

    def _pull(self, ti: Any, map_index: int, key: str, stages: Sequence[str]) -> dict[str, Any]:
        """One symbol's XCom ``key`` of the given stages; missing ones are None."""
        if not stages:
            return {}
        task_ids = [f"{self.chain_group_id}.{stage}" for stage in stages]
        values = ti.xcom_pull(task_ids=task_ids, map_indexes=map_index, key=key) or [None] * len(stages)
        return {stage: values[i] if i < len(values) else None for i, stage in enumerate(stages)}
