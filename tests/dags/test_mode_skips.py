"""Stages a run's mode leaves out are skipped by the scheduler: no task for them ever starts.

Real `dag.test()` runs on the synthetic spec (one symbol trains, one whose bars do not exist
fails): the train_backtest run skips inference, review and persist; the inference run then
skips train_backtest. A started task instance goes through Airflow's "run" call, which records
the process id and host that ran it and counts a try; a task instance the scheduler skipped has
neither, and no start of it is logged.
"""

import pytest

from tmpipe import airflow_env
from tmpipe.runner import read_summary

from ..pipeline.conftest import DAG_ID, spec_file

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("dag_test_environ")]

GROUP = "symbol_chain"


def run_dag(dag, conf: dict, logical_date: str) -> tuple[str, dict[str, list], dict]:
    """One `dag.test()` run: its state, each chain stage's task instances and the summary."""
    from datetime import datetime

    when = datetime.fromisoformat(logical_date)
    dag_run = dag.test(run_conf=conf, logical_date=when, run_after=when)
    stages: dict[str, list] = {}
    for ti in dag_run.get_task_instances():
        if ti.task_id.startswith(GROUP + "."):
            stages.setdefault(ti.task_id.split(".", 1)[1], []).append(ti)
    return str(dag_run.state), stages, read_summary(DAG_ID, dag_run.run_id)


def started(ti) -> bool:
    """Whether a task process (here: dag.test's in-process runner) ran this task instance."""
    return ti.pid is not None or bool(ti.hostname) or ti.try_number > 0


def test_stages_outside_the_mode_start_no_task_and_each_symbol_stays_independent(
    airflow_home, tmpipe_home, tmp_path, monkeypatch, caplog
):
    broken = {"data": {"source": "csv", "path": str(tmp_path / "no_such_bars.csv")}}
    monkeypatch.setenv("TMPIPE_SPEC", str(spec_file(tmp_path, symbols={"BROKEN": broken})))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(airflow_env.installed_dags_folder()))
    assert bag.import_errors == {}
    dag = bag.get_dag(DAG_ID)

    # train_backtest: AAA trains, BROKEN fails in its own train_backtest; nothing after it starts.
    state, stages, summary = run_dag(dag, {"symbols": ["AAA", "BROKEN"], "mode": "train_backtest"}, "2024-06-03T00:00:00+00:00")
    assert state == "failed"
    assert sorted((ti.map_index, str(ti.state)) for ti in stages["train_backtest"]) == [(0, "success"), (1, "failed")]
    assert all(started(ti) for ti in stages["train_backtest"])
    for stage in ("inference", "review", "persist"):
        # skipped; BROKEN's may also read upstream_failed if the scheduler sees its failed train first
        assert stages[stage] and {str(ti.state) for ti in stages[stage]} <= {"skipped", "upstream_failed"}, stage
        assert not any(started(ti) for ti in stages[stage]), [(ti.task_id, ti.map_index, ti.pid, ti.try_number) for ti in stages[stage]]
    rows = {row["symbol"]: row for row in summary["symbols"]}
    assert rows["AAA"]["status"] == "success" and rows["AAA"]["promoted"] is True
    assert rows["BROKEN"]["status"] == "failed" and rows["BROKEN"]["error"].startswith("train_backtest: DataError:")
    assert summary["error"] is None and summary["mode"] == "train_backtest"

    # inference: train_backtest starts no task; each symbol's inference runs after it (none_failed),
    # and BROKEN's failure stops only its own chain.
    caplog.clear()
    state, stages, summary = run_dag(dag, {"symbols": ["AAA", "BROKEN"], "mode": "inference"}, "2024-06-04T00:00:00+00:00")
    assert state == "failed"
    assert stages["train_backtest"] and {str(ti.state) for ti in stages["train_backtest"]} == {"skipped"}
    assert not any(started(ti) for ti in stages["train_backtest"])
    assert not [r for r in caplog.records if "starting task_id=symbol_chain.train_backtest" in r.getMessage()]
    by_symbol = {stage: {ti.map_index: str(ti.state) for ti in tis} for stage, tis in stages.items() if stage != "train_backtest"}
    assert by_symbol == {
        "inference": {0: "success", 1: "failed"},
        "review": {0: "success", 1: "upstream_failed"},
        "persist": {0: "success", 1: "upstream_failed"},
    }
    rows = {row["symbol"]: row for row in summary["symbols"]}
    assert rows["AAA"]["status"] == "success" and rows["AAA"]["signal_artifact_id"] is not None
    assert rows["BROKEN"]["status"] == "failed" and rows["BROKEN"]["error"].startswith("inference: ")
