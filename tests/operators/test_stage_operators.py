"""The stage operators: skip what the mode does not run, hand the MLflow run id down the chain,
and leave a failed stage's error record (data, not text) in XCom for summarize."""

from __future__ import annotations

import pytest

from ..pipeline.conftest import spec_text
from .conftest import GROUP, DagRunMemory


@pytest.fixture
def spec_path(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(spec_text())  # demo bars for the demo_symbols AAA and BBB
    return str(path)


def chain(operators, spec_path: str, symbol: str) -> dict:
    common = {"symbol": symbol, "spec_path": spec_path}
    ops = operators.stages
    return {
        "train_backtest": ops.TrainBacktestOperator(task_id=f"{GROUP}.train_backtest", **common),
        "inference": ops.InferenceOperator(task_id=f"{GROUP}.inference", **common),
        "review": ops.ReviewOperator(task_id=f"{GROUP}.review", **common),
        "persist": ops.PersistOperator(task_id=f"{GROUP}.persist", **common),
    }


def test_the_stages_a_mode_does_not_run_skip_without_an_error_record(operators, spec_path, tmpipe_home):
    from airflow.sdk.exceptions import AirflowSkipException

    run = DagRunMemory({"mode": "train_backtest", "symbol": "AAA"})
    for stage, operator in chain(operators, spec_path, "AAA").items():
        if stage == "train_backtest":
            continue
        with pytest.raises(AirflowSkipException, match=f"mode train_backtest: {GROUP}.{stage} does not run"):
            run.execute(operator, map_index=0)
    assert run.xcoms == {}
    assert not (tmpipe_home / "mlflow").exists()  # nothing was tracked


def test_each_stage_logs_into_the_run_the_previous_stage_returned(operators, spec_path, tmpipe_home):
    from mlflow import MlflowClient

    from tmpipe.config.sections import MlflowConfig
    from tmpipe.tracking.run_identity import TAG_DAG_ID, TAG_DAG_RUN_ID, TAG_SYMBOL, resolve_tracking_uri

    run = DagRunMemory({"mode": "both", "symbol": "AAA"})
    run.execute(operators.symbols.ResolveSymbolsOperator(task_id="resolve_symbols", spec_path=spec_path))
    stages = chain(operators, spec_path, "AAA")
    trained = run.execute(stages["train_backtest"], map_index=0)

    # An older run with the same identity tags, as a lost creation race leaves one: a search by tags picks it.
    client = MlflowClient(resolve_tracking_uri(MlflowConfig.from_values({}), tmpipe_home))
    own = client.get_run(trained["mlflow_run_id"])
    identity = {key: own.data.tags[key] for key in (TAG_DAG_ID, TAG_DAG_RUN_ID, TAG_SYMBOL)}
    older = client.create_run(own.info.experiment_id, start_time=own.info.start_time - 60_000, tags=identity).info.run_id

    outputs = [run.execute(stages[name], map_index=0) for name in ("inference", "review", "persist")]
    assert {out["mlflow_run_id"] for out in outputs} == {trained["mlflow_run_id"]} != {older}
    assert client.get_run(trained["mlflow_run_id"]).info.status == "FINISHED"


def test_a_failed_stage_leaves_its_error_record_and_fails_without_retries(operators, spec_path, tmpipe_home):
    from airflow.sdk.exceptions import AirflowFailException

    run = DagRunMemory({"mode": "both", "symbol": "X"})  # X has no bars of its own: a DataError
    with pytest.raises(AirflowFailException, match="^DataError: X: demo bars"):
        run.execute(chain(operators, spec_path, "X")["train_backtest"], map_index=0)
    record = run.xcoms[(f"{GROUP}.train_backtest", 0, "error")]
    assert {key: value for key, value in record.items() if key != "message"} == {
        "stage": "train_backtest", "symbol": "X", "kind": "DataError", "retryable": False, "status": None}
    assert record["message"].startswith("X: demo bars (synthetic) are for the spec's demo_symbols (AAA, BBB), not X; ")


def test_summarize_reads_the_records_into_rows_and_fails_the_run(operators, spec_path, tmpipe_home):
    from airflow.sdk.exceptions import AirflowFailException

    from tmpipe.errors import DataError, error_record

    run = DagRunMemory({"mode": "train_backtest"})
    run.xcoms[("resolve_symbols", -1, "return_value")] = ["AAA", "BBB"]
    run.xcoms[(f"{GROUP}.train_backtest", 0, "return_value")] = {"mlflow_run_id": "r1", "test_sharpe": 0.5}
    run.xcoms[(f"{GROUP}.train_backtest", 1, "error")] = error_record(DataError("no rows", path="b.csv"), stage="train_backtest", symbol="BBB")
    summarize = operators.summary.SummarizeOperator(task_id="summarize", chain_group_id=GROUP, spec_path=spec_path)
    with pytest.raises(AirflowFailException, match="^1 of 2 symbols failed: BBB$"):
        run.execute(summarize)
    rows = {row["symbol"]: row for row in run.xcoms[("summarize", -1, "summary")]["symbols"]}
    assert (rows["AAA"]["status"], rows["AAA"]["mlflow_run_id"], rows["AAA"]["error"]) == ("success", "r1", None)
    assert (rows["BBB"]["status"], rows["BBB"]["error"]) == ("failed", "train_backtest: DataError: b.csv: no rows")
