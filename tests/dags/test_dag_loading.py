"""The dags folder loads in Airflow 3 with the expected graph, and parsing touches no network."""

import subprocess
import sys
import textwrap

import pytest

from tmpipe import airflow_env

DAG_ID = "trademaster_autogen_pipeline_workflow"
DAG_FILE = airflow_env.installed_dags_folder() / f"{DAG_ID}.py"


def test_dagbag_has_the_dag_without_import_errors(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(airflow_env.installed_dags_folder()))
    assert bag.import_errors == {}
    dag = bag.get_dag(DAG_ID)
    graph = {task_id: sorted(task.upstream_task_ids) for task_id, task in dag.task_dict.items()}
    assert graph == {
        "resolve_symbols": [],
        "symbol_chain.train_backtest": ["resolve_symbols"],
        "symbol_chain.inference": ["resolve_symbols", "symbol_chain.train_backtest"],
        "symbol_chain.review": ["resolve_symbols", "symbol_chain.inference"],
        "symbol_chain.persist": ["resolve_symbols", "symbol_chain.review"],
        "score_signals": ["symbol_chain.persist"],
        "summarize": ["score_signals", "symbol_chain.persist"],
    }
    assert dag.task_dict["summarize"].trigger_rule == "all_done"
    assert dag.task_dict["score_signals"].trigger_rule == "all_done"
    assert [t.task_id for t in dag.leaves] == ["summarize"]
    assert dag.task_dict["symbol_chain.inference"].trigger_rule == "none_failed"
    assert dag.params.get_param("mode").schema["enum"] == ["both", "train_backtest", "inference"]
    assert dag.params["mode"] == "both"
    for stage in ("train_backtest", "inference", "review", "persist"):
        assert dag.task_dict[f"symbol_chain.{stage}"].map_index_template == "{{ task.symbol }}"


def test_importing_the_dags_file_opens_no_socket(airflow_home):
    """Run the dags file in a fresh interpreter where creating any socket raises."""
    script = textwrap.dedent(
        f"""
        import runpy, socket
        class Blocked(socket.socket):
            def __init__(self, *a, **k):
                raise RuntimeError("socket opened at DAG parse time")
        socket.socket = Blocked
        socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("connection at parse time"))
        namespace = runpy.run_path({str(DAG_FILE)!r})
        print(type(namespace[{DAG_ID!r}]).__name__)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("DAG")


def test_dags_file_is_a_few_lines():
    """A few lines besides the Airflow modules it names for the processor to pre-import."""
    code = [line for line in DAG_FILE.read_text().splitlines()
            if line.strip() and not line.startswith(("#", '"""', "import airflow."))]
    assert len(code) <= 8


def test_a_bad_mode_fails_the_trigger_before_any_task(airflow_home):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.param import ParamValidationError

    dag = DagBag(dag_folder=str(airflow_env.installed_dags_folder())).get_dag(DAG_ID)
    with pytest.raises(ParamValidationError, match="sideways"):
        dag.test(run_conf={"mode": "sideways"})
