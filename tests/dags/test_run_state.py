"""The DAG run's state is the truth: real `dag.test()` runs where resolve_symbols fails, or finds nothing.

Each run parses the dags folder against a spec of the test's own (TMPIPE_SPEC) and a fresh,
empty embedded WebUI store (TMPIPE_HOME), so no symbol trains here.
"""

import pytest
import yaml

from tmpipe import airflow_env
from tmpipe.runner import read_summary

from ..pipeline.conftest import DAG_ID, spec_file, spec_text
from ..servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("dag_test_environ")]


def run_dag(tmp_path, monkeypatch, conf: dict, **spec_sections) -> tuple[str, dict[str, str], dict]:
    """One `dag.test()` run; returns the run's state, the top-level task states and the summary."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("TMPIPE_SPEC", str(spec_file(tmp_path, **spec_sections)))
    bag = DagBag(dag_folder=str(airflow_env.installed_dags_folder()))
    assert bag.import_errors == {}
    dag_run = bag.get_dag(DAG_ID).test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances() if "." not in ti.task_id}
    return str(dag_run.state), states, read_summary(DAG_ID, dag_run.run_id)


@pytest.mark.parametrize(
    "conf, webui_down, error_start, error_part",
    [
        # A misspelt key: Airflow's trigger takes it (Params cannot reject unknown keys), resolve_symbols does not.
        ({"symbl": "AAA"}, False, "resolve_symbols: SpecError: dag_run.conf", "symbl: unknown key 'symbl' (did you mean 'symbol'?)"),
        # The operator's WebUI does not answer (which WebUI is operator-only, so the spec says it).
        ({"symbol": "AAA"}, True, "resolve_symbols: StoreError: GET http://127.0.0.1:{port}/api/workflow-symbols/", "ConnectError"),
    ],
    ids=["misspelt-conf-key", "webui-unreachable"],
)
def test_a_failed_resolve_symbols_fails_the_run(
    airflow_home, tmpipe_home, tmp_path, monkeypatch, conf, webui_down, error_start, error_part
):
    port = free_port()  # nothing listens there
    sections = {}
    if webui_down:
        defaults = yaml.safe_load(spec_text())["defaults"]
        sections["defaults"] = {**defaults, "webui": {"backend": "http", "base_url": f"http://127.0.0.1:{port}", "retries": 0}}
    state, states, summary = run_dag(tmp_path, monkeypatch, conf, **sections)
    assert state == "failed"
    assert states == {"resolve_symbols": "failed", "score_signals": "skipped", "summarize": "failed"}
    assert summary["symbols"] == []
    assert summary["error"].startswith(error_start.format(port=port)), summary
    assert error_part in summary["error"]


def test_no_symbols_fails_the_run_naming_the_query_and_the_dag(airflow_home, tmpipe_home, tmp_path, monkeypatch):
    state, states, summary = run_dag(tmp_path, monkeypatch, {})
    assert state == "failed"
    assert states == {"resolve_symbols": "failed", "score_signals": "skipped", "summarize": "failed"}
    store, spec = tmpipe_home / "webui" / "webui.db", tmp_path / "spec.yaml"
    message = (
        f"no symbols to run for DAG {DAG_ID}: the embedded WebUI store ({store}) "
        f"lists no enabled symbol with an active link to {DAG_ID}; add one (tmpipe webui add-symbol SYM), "
        f"name symbols in dag_run.conf, or set symbol_selection.on_no_symbols: succeed in {spec}"
    )
    # The summary keeps the first 300 characters of a task's error message, so how much of the
    # hint fits depends on the length of the temporary paths (they vary by machine).
    assert summary["error"] == f"resolve_symbols: SymbolSelectionError: {message[:300]}", summary


def test_no_symbols_succeeds_when_the_spec_says_so(airflow_home, tmpipe_home, tmp_path, monkeypatch):
    state, states, summary = run_dag(tmp_path, monkeypatch, {}, symbol_selection={"on_no_symbols": "succeed"})
    assert state == "success"
    assert states == {"resolve_symbols": "success", "score_signals": "success", "summarize": "success"}
    assert summary["symbols"] == [] and summary["error"] is None
    assert summary["signal_scores"] == {"graded": 0, "symbols": {}, "errors": {}}
    assert summary["no_symbols"].startswith(f"no symbols to run for DAG {DAG_ID}: the embedded WebUI store")


def test_named_symbols_beyond_the_cap_fail_the_run(airflow_home, tmpipe_home, tmp_path, monkeypatch):
    state, states, summary = run_dag(tmp_path, monkeypatch, {"symbols": ["AAA", "BBB", "CCC"]}, limits={"max_symbols": 1})
    assert state == "failed"
    assert states == {"resolve_symbols": "failed", "score_signals": "skipped", "summarize": "failed"}
    assert summary["error"].startswith(
        "resolve_symbols: SymbolSelectionError: dag_run.conf names 3 symbols but limits.max_symbols is 1, "
        "so these would not run: BBB, CCC; name at most 1, or set symbol_selection.on_too_many_symbols: truncate"
    )
