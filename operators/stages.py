"""The per-symbol stage operators; each calls one function of tmpipe.pipeline.stages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from airflow.sdk.exceptions import AirflowSkipException

from .base import TmpipeOperator, connection_lookup
from .symbols import LINKS_KEY
from tmpipe.pipeline import modes, stages
from tmpipe.pipeline.context import RunContext

if TYPE_CHECKING:
    from tmpipe.config.sections import ModelClientConfig

RESOLVE_TASK_ID = "resolve_symbols"


class SymbolStageOperator(TmpipeOperator):
    """A stage of one symbol's chain; ``symbol`` is templated so mapping hands it over resolved."""

    template_fields: Sequence[str] = ("symbol",)
    # The stage of tmpipe.pipeline.modes.STAGES this operator runs.
    stage: str = ""

    def __init__(self, *, symbol: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.symbol = symbol

    @property
    def stage_name(self) -> str:
        return self.stage

    @property
    def symbol_name(self) -> str | None:
        return self.symbol

    def run_stage(self, ctx: RunContext, context: Any) -> Any:
        mode = ctx.mode
        # The scheduler skips stages outside the mode before they start (resolve_symbols tells it);
        # this covers a task started anyway, e.g. by `airflow tasks test`.
        if not modes.runs(mode, self.stage):
            raise AirflowSkipException(f"mode {mode}: {self.task_id} does not run")
        links = context["ti"].xcom_pull(task_ids=RESOLVE_TASK_ID, key=LINKS_KEY) or {}
        return self.run_symbol(ctx, links.get(self.symbol), self.handed_over_run_id(context))

    def run_symbol(self, ctx: RunContext, link: dict[str, Any] | None, run_id: str | None) -> Any:
        raise NotImplementedError

    def handed_over_run_id(self, context: Any) -> str | None:
        """The MLflow run id the previous stage of this symbol's chain returned; None for the
        chain's first stage or after a skipped one (the stage then finds or creates the run)."""
        index = modes.STAGES.index(self.stage)
        if index == 0:
            return None
        ti = context["ti"]
        group = self.task_id.rsplit(".", 1)[0]  # same group, same map index
        previous = ti.xcom_pull(task_ids=f"{group}.{modes.STAGES[index - 1]}", map_indexes=ti.map_index)
        return previous.get("mlflow_run_id") if isinstance(previous, dict) else None


class TrainBacktestOperator(SymbolStageOperator):
    stage = "train_backtest"

    def run_symbol(self, ctx, link, run_id):
        return stages.train_backtest(ctx, self.symbol, link)


class InferenceOperator(SymbolStageOperator):
    stage = "inference"

    def run_symbol(self, ctx, link, run_id):
        return stages.inference(ctx, self.symbol, link, run_id=run_id)


class ReviewOperator(SymbolStageOperator):
    stage = "review"

    def run_symbol(self, ctx, link, run_id):
        return stages.review(ctx, self.symbol, link, run_id=run_id, api_key_resolver=_api_key_from_connection)


class PersistOperator(SymbolStageOperator):
    stage = "persist"

    def run_symbol(self, ctx, link, run_id):
        return stages.persist(ctx, self.symbol, link, run_id=run_id)


def _api_key_from_connection(model_client: ModelClientConfig) -> dict[str, str | None] | None:
    """The review's key (and endpoint) from the Airflow connection named in the spec, if any."""
    if not model_client.airflow_conn_id:
        return None
    base_url, key = connection_lookup(model_client.airflow_conn_id)
    return {"api_key": key, "base_url": base_url}
