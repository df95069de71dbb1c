"""The dags folder loads in Airflow 3 with the expected graph, and parsing touches no network."""

import ast
import subprocess
import sys
import textwrap

import pytest

from tmpipe import airflow_env

from ..pipeline.conftest import spec_file

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
        # Every stage, not only persist: a mode's skipped stages must not let them fire while an
        # earlier stage is up for retry.
        "score_signals": [f"symbol_chain.{stage}" for stage in ("inference", "persist", "review", "train_backtest")],
        "summarize": ["score_signals"] + [f"symbol_chain.{stage}" for stage in ("inference", "persist", "review", "train_backtest")],
    }
    assert dag.task_dict["summarize"].trigger_rule == "all_done"
    assert dag.task_dict["score_signals"].trigger_rule == "all_done"
    assert [t.task_id for t in dag.leaves] == ["summarize"]
    assert dag.task_dict["symbol_chain.inference"].trigger_rule == "none_failed"
    assert dag.params.get_param("mode").schema["enum"] == ["both", "train_backtest", "inference"]
    assert dag.params["mode"] == "both"
    for stage in ("train_backtest", "inference", "review", "persist"):
        assert dag.task_dict[f"symbol_chain.{stage}"].map_index_template == "{{ task.symbol }}"


HEAVY = ("torch", "mlflow", "autogen_agentchat", "autogen_core", "autogen_ext", "pandas")


def test_parsing_the_dags_file_opens_no_socket_and_imports_no_heavy_library(airflow_home):
    """One fresh interpreter shows both parse-time rules: creating any socket raises there, and
    after importing every operator module and running the dags file none of HEAVY is loaded
    (tasks import them when they run)."""
    operators = sorted(f"tmpipe.operators.{path.stem}" for path in airflow_env.installed_dags_folder().parent.joinpath("operators").glob("*.py"))
    script = textwrap.dedent(
        f"""
        import importlib, runpy, socket, sys
        class Blocked(socket.socket):
            def __init__(self, *a, **k):
                raise RuntimeError("socket opened at DAG parse time")
        socket.socket = Blocked
        socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("connection at parse time"))
        for module in {operators!r}:
            importlib.import_module(module)
        namespace = runpy.run_path({str(DAG_FILE)!r})
        print(type(namespace[{DAG_ID!r}]).__name__)
        print(sorted({{m.split(".")[0] for m in sys.modules}} & {set(HEAVY)!r}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    *_, dag_type, heavy = result.stdout.strip().splitlines()
    assert dag_type == "DAG"
    assert heavy == "[]", f"imported while parsing the DAG: {heavy}"


def test_dags_file_only_hands_its_spec_to_the_generator():
    """No task, operator or logic of its own: imports (the Airflow modules it names for the DAG
    processor to pre-import among them), the specs path and one build_dags call."""
    tree = ast.parse(DAG_FILE.read_text())
    docstring, *body = tree.body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    imports = [node for node in body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [getattr(node, "module", None) or node.names[0].name for node in imports]
    assert sorted(n for n in names if not n.startswith("airflow.")) == ["os", "pathlib", "tmpipe.generator"]
    assert all(isinstance(node, ast.Import) for node in imports if node.names[0].name.startswith("airflow."))
    [assign, call] = [node for node in body if node not in imports]
    assert [target.id for target in assign.targets] == ["SPECS"]
    assert {"TMPIPE_SPEC", "TMPIPE_SPECS_DIR"} <= {c.value for c in ast.walk(assign.value) if isinstance(c, ast.Constant)}
    assert ast.unparse(call) == "build_dags(globals(), SPECS)"


def test_the_dag_comes_from_the_spec_named_by_tmpipe_spec(airflow_home, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    dag = {"dag_id": "another_dag_from_the_spec", "retries": 0, "tags": ["from-the-spec"]}
    monkeypatch.setenv("TMPIPE_SPEC", str(spec_file(tmp_path, dag=dag)))
    bag = DagBag(dag_folder=str(airflow_env.installed_dags_folder()))
    assert bag.import_errors == {}
    assert list(bag.dag_ids) == ["another_dag_from_the_spec"]
    assert sorted(bag.get_dag("another_dag_from_the_spec").tags) == ["dagfactory", "from-the-spec"]  # dag-factory adds its own


def test_a_bad_mode_fails_the_trigger_before_any_task(airflow_home):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.param import ParamValidationError

    dag = DagBag(dag_folder=str(airflow_env.installed_dags_folder())).get_dag(DAG_ID)
    with pytest.raises(ParamValidationError, match="sideways"):
        dag.test(run_conf={"mode": "sideways"})
