"""The per-DAG-run LLM budget's ledger in a real SQLite MLflow store: the DAG run's symbols, whatever their experiment."""

from __future__ import annotations

import pytest

from tmpipe.tracking import client_for
from tmpipe.tracking.run_identity import TAG_DAG_ID, TAG_DAG_RUN_ID, TAG_SYMBOL
from tmpipe.tracking.stage_logging import dag_run_review_spend, log_review_spend

DAG = "trademaster_autogen_pipeline_workflow"


def test_the_dag_runs_spend_counts_its_symbols_in_every_experiment(tracking_uri):
    client = client_for(tracking_uri)
    experiments = {name: client.create_experiment(name) for name in ("equities", "indices")}

    def run(experiment: str, symbol: str, dag_run_id: str, *spend: float) -> str:
        tags = {TAG_DAG_ID: DAG, TAG_DAG_RUN_ID: dag_run_id, TAG_SYMBOL: symbol}
        run_id = client.create_run(experiments[experiment], tags=tags).info.run_id
        for usd in spend:  # the running total after each answered call
            log_review_spend(run_id, usd, tracking_uri=tracking_uri)
        return run_id

    own = run("equities", "AAPL", "manual__1", 0.5)
    run("equities", "MSFT", "manual__1", 0.004, 0.01)
    run("indices", "SPX", "manual__1", 0.005, 0.02)  # another experiment, same DAG run
    run("indices", "NDX", "manual__2", 1.0)  # another DAG run
    tags = {TAG_DAG_ID: DAG, TAG_DAG_RUN_ID: "manual__1"}
    assert dag_run_review_spend(tracking_uri, tags, own) == pytest.approx(0.03)
