"""Many specs, many DAGs: each spec in the folder is a DAG; a bad spec stands out and stops no other."""

import logging
import shutil
from pathlib import Path

import pytest

from tmpipe import airflow_env

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "dag_specs"
MAIN_ID = "trademaster_autogen_pipeline_workflow"
RESEARCH_ID = "trademaster_research_pipeline"


def _bag(monkeypatch, specs_dir: Path):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.delenv("TMPIPE_SPEC", raising=False)
    monkeypatch.setenv("TMPIPE_SPECS_DIR", str(specs_dir))
    return DagBag(dag_folder=str(airflow_env.installed_dags_folder()))


def test_the_shipped_specs_are_two_dags(airflow_home, monkeypatch):
    monkeypatch.delenv("TMPIPE_SPECS_DIR", raising=False)
    monkeypatch.delenv("TMPIPE_SPEC", raising=False)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(airflow_env.installed_dags_folder()))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == [MAIN_ID, RESEARCH_ID]
    research = bag.get_dag(RESEARCH_ID)
    assert research.params["mode"] == "train_backtest"
    assert research.schedule == "0 6 * * 6"
    assert set(research.task_dict) == set(bag.get_dag(MAIN_ID).task_dict)


def test_tmpipe_spec_still_loads_only_that_spec(airflow_home, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("TMPIPE_SPEC", str(SHIPPED / f"{RESEARCH_ID}.yaml"))
    bag = DagBag(dag_folder=str(airflow_env.installed_dags_folder()))
    assert bag.dag_ids == [RESEARCH_ID]


def test_a_duplicate_dag_id_and_a_broken_spec_are_shown_while_good_specs_load(airflow_home, dag_test_environ, monkeypatch,
                                                                             tmp_path, caplog):
    shutil.copy(SHIPPED / f"{MAIN_ID}.yaml", tmp_path / "a_main.yaml")
    shutil.copy(SHIPPED / f"{RESEARCH_ID}.yaml", tmp_path / "b_research.yaml")
    (tmp_path / "c_copy.yaml").write_text((SHIPPED / f"{MAIN_ID}.yaml").read_text().replace("max_symbols: 10", "max_symbols: 5"))
    (tmp_path / "d_broken.yaml").write_text("schema_version: 1\ndag:\n  dag_id: broken_one\ndefaults:\n  trademaster:\n    epoch: 3\n")
    with caplog.at_level(logging.ERROR, logger="tmpipe.generator"):
        bag = _bag(monkeypatch, tmp_path)

    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["broken_one", MAIN_ID, RESEARCH_ID]
    assert len(bag.get_dag(RESEARCH_ID).task_dict) == 7  # the good spec is the real DAG: resolve, 4 stages, score_signals, summarize

    duplicate = bag.get_dag(MAIN_ID)  # neither copy wins silently: the placeholder names both files
    assert list(duplicate.task_dict) == ["invalid_spec"]
    assert f"{tmp_path}/a_main.yaml:1:1: dag.dag_id: dag_id '{MAIN_ID}' is also the dag_id of {tmp_path}/c_copy.yaml" in duplicate.doc_md
    assert f"{tmp_path}/c_copy.yaml:1:1: dag.dag_id: dag_id '{MAIN_ID}' is also the dag_id of {tmp_path}/a_main.yaml" in duplicate.doc_md

    broken = bag.get_dag("broken_one")
    line = f"{tmp_path}/d_broken.yaml:6:5: defaults.trademaster.epoch: unknown key 'epoch' (did you mean 'epochs'?)"
    assert line in broken.doc_md
    assert broken.is_paused_upon_creation and broken.schedule is None
    assert line in caplog.text and "c_copy.yaml" in caplog.text

    dag_run = broken.test()
    assert str(dag_run.state) == "failed"


def test_a_broken_spec_without_a_readable_dag_id_gets_a_placeholder_named_after_its_file(airflow_home, monkeypatch, tmp_path):
    shutil.copy(SHIPPED / f"{RESEARCH_ID}.yaml", tmp_path / "research.yaml")
    (tmp_path / "half written.yaml").write_text("schema_version: 1\ndag: [\n")
    bag = _bag(monkeypatch, tmp_path)
    assert sorted(bag.dag_ids) == ["tmpipe_invalid_spec__half_written", RESEARCH_ID]
    assert "half written.yaml:2:6: $: YAML syntax error" in bag.get_dag("tmpipe_invalid_spec__half_written").doc_md


def test_the_dag_docs_carry_the_spec_and_its_sha256():
    import hashlib

    from tmpipe.generator import dag_factory_config
    from tmpipe.spec.loader import load_spec

    path = SHIPPED / f"{RESEARCH_ID}.yaml"
    doc = dag_factory_config(load_spec(path))[RESEARCH_ID]["doc_md"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() in doc
    assert f"```yaml\n{path.read_text().rstrip()}\n```" in doc


def test_the_dag_docs_mask_url_credentials_of_the_spec(tmp_path):
    from tmpipe.generator import dag_factory_config
    from tmpipe.spec.loader import load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text((SHIPPED / f"{RESEARCH_ID}.yaml").read_text().replace(
        "  mlflow:\n", "  mlflow:\n    tracking_uri: https://bob:hunter2-secret@mlflow.example/\n"))
    doc = dag_factory_config(load_spec(spec))[RESEARCH_ID]["doc_md"]
    assert "tracking_uri: https://bob:***@mlflow.example/" in doc and "hunter2" not in doc


def test_the_airflow_dag_shows_those_docs(airflow_home, monkeypatch):
    from tmpipe.generator import dag_factory_config
    from tmpipe.spec.loader import load_spec

    dag = _bag(monkeypatch, SHIPPED).get_dag(RESEARCH_ID)
    assert dag.doc_md == dag_factory_config(load_spec(SHIPPED / f"{RESEARCH_ID}.yaml"))[RESEARCH_ID]["doc_md"]


def test_the_trigger_form_params_have_titles_examples_and_the_stage_config_schema(airflow_home, monkeypatch):
    from airflow.sdk.definitions.param import ParamValidationError

    dag = _bag(monkeypatch, SHIPPED).get_dag(MAIN_ID)
    for name in ("mode", "symbol", "symbols", "max_symbols", "config"):
        param = dag.params.get_param(name)
        assert param.schema["title"] and param.description and param.schema["examples"], name
    config = dag.params.get_param("config")
    assert set(config.schema["properties"]) == {"data", "trademaster", "review", "mlflow", "webui"}
    assert "epochs" in config.schema["properties"]["trademaster"]["description"]  # each section names its keys
    config.resolve({"trademaster": {"epochs": 3}})
    with pytest.raises(ParamValidationError, match="trademastr"):  # a misspelt section is refused at trigger time
        config.resolve({"trademastr": {"epochs": 3}})
