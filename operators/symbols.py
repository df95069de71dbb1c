"""resolve_symbols: which symbols this run covers, each one's WebUI link layer, and what the cap dropped.

It also tells the scheduler which stages the run's mode leaves out, so no task starts for them:
it is a direct upstream of every stage of the mapped chain, and Airflow's NotPreviouslySkippedDep
(one of every task's scheduler dependencies) marks a task instance ``skipped``, without queueing
it, when a direct upstream that "can skip downstream" has pushed the ``skipmixin_key`` XCom
naming that task (the record SkipMixin.skip and the branch operators write).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.bases.skipmixin import XCOM_SKIPMIXIN_KEY, XCOM_SKIPMIXIN_SKIPPED

from .base import TmpipeOperator
from tmpipe.pipeline import modes, stages
from tmpipe.pipeline.context import RunContext

LINKS_KEY = "links"
# {"dropped": [...], "no_symbols": str | None}: read by summarize.
SELECTION_KEY = "selection"


class ResolveSymbolsOperator(TmpipeOperator):
    """Returns the list of symbols to map over; pushes their link layers under ``links`` and,
    for a mode that leaves stages out, those stages' task ids under ``skipmixin_key``."""

    # Serialized as ``_can_skip_downstream``: the scheduler then reads the skip record above.
    # (SkipMixin.skip itself would end the task without its return value, the symbol list.)
    inherits_from_skipmixin = True

    def run_stage(self, ctx: RunContext, context: Any) -> list[str]:
        selection = stages.resolve_symbols(ctx)
        ti = context["ti"]
        ti.xcom_push(key=LINKS_KEY, value=selection.links)
        ti.xcom_push(key=SELECTION_KEY, value={"dropped": selection.dropped, "no_symbols": selection.no_symbols})
        left_out = self.stages_left_out(ctx.mode)
        if left_out:
            self.log.info("mode %s: the scheduler skips %s", ctx.mode, ", ".join(left_out))
            ti.xcom_push(key=XCOM_SKIPMIXIN_KEY, value={XCOM_SKIPMIXIN_SKIPPED: left_out})
        return selection.symbols

    def stages_left_out(self, mode: str) -> list[str]:
        """Task ids of the downstream chain stages (``SymbolStageOperator.stage``) ``mode`` does not run."""
        run = modes.stages_of(mode)
        if run == modes.STAGES or not self.has_dag():  # nothing to leave out, or no DAG (run as a unit)
            return []
        not_run = set(modes.STAGES) - set(run)
        return sorted(task.task_id for task in self.downstream_list if getattr(task, "stage", None) in not_run)
