"""Specs by path or dag_id, duplicates in one folder, and each spec seeding its own demo symbols."""

import shutil
from pathlib import Path

from click.testing import CliRunner

from tmpipe.cli import main
from tmpipe.runner import seed_demo_symbols
from tmpipe.spec.loader import load_spec
from tmpipe.store.models import SymbolUpdate
from tmpipe.store.sqlite import SqliteArtifactStore

SHIPPED = Path(__file__).resolve().parents[2] / "dag_specs"
MAIN = SHIPPED / "trademaster_autogen_pipeline_workflow.yaml"
RESEARCH = SHIPPED / "trademaster_research_pipeline.yaml"


def test_commands_take_a_spec_by_dag_id(monkeypatch, tmp_path):
    copy = tmp_path / "renamed.yaml"
    copy.write_text(RESEARCH.read_text().replace("dag_id: trademaster_research_pipeline", "dag_id: team_b"))
    monkeypatch.setenv("TMPIPE_SPECS_DIR", str(tmp_path))
    runner = CliRunner()
    rendered = runner.invoke(main, ["render", "--spec", "team_b", "--format", "json"])
    assert rendered.exit_code == 0, rendered.output
    assert '"team_b": {' in rendered.stdout
    explained = runner.invoke(main, ["explain", "--spec", "team_b", "--symbol", "SYN", "--json"])
    assert explained.exit_code == 0 and '"demo_series"' in explained.stdout
    assert runner.invoke(main, ["validate", "team_b"]).exit_code == 0
    missing = runner.invoke(main, ["render", "--spec", "team_c"])
    assert missing.exit_code == 1
    assert missing.stderr.strip() == f"team_c:1:1: $: no such spec file, and no spec in {tmp_path} has dag_id 'team_c'"


def test_validate_names_both_files_of_a_shared_dag_id(tmp_path):
    shutil.copy(MAIN, tmp_path / "a.yaml")
    shutil.copy(MAIN, tmp_path / "b.yaml")
    shutil.copy(RESEARCH, tmp_path / "c.yaml")
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    message = "dag.dag_id: dag_id 'trademaster_autogen_pipeline_workflow' is also the dag_id of"
    assert result.stdout.splitlines() == [
        f"{tmp_path}/a.yaml:1:1: {message} {tmp_path}/b.yaml; each spec needs its own dag_id",
        f"{tmp_path}/b.yaml:1:1: {message} {tmp_path}/a.yaml; each spec needs its own dag_id",
    ]


def test_each_spec_seeds_its_own_demo_symbols_once(tmp_path):
    store = SqliteArtifactStore(tmp_path / "webui.db")
    main_spec, research = load_spec(MAIN), load_spec(RESEARCH)
    assert seed_demo_symbols(main_spec, store) == ["SPX", "NDX"]
    store.update_symbol("SPX", SymbolUpdate(priority=50))  # the operator's change survives another spec's seeding
    assert seed_demo_symbols(research, store) == ["SPX", "NDX", "SYN"]
    links = {entry.symbol: sorted(link.dag_id for link in entry.links) for entry in store.list_workflow_symbols(enabled_only=False)}
    assert links == {
        "SPX": ["trademaster_autogen_pipeline_workflow", "trademaster_research_pipeline"],
        "NDX": ["trademaster_autogen_pipeline_workflow", "trademaster_research_pipeline"],
        "SYN": ["trademaster_research_pipeline"],
    }
    assert {entry.symbol: entry.priority for entry in store.list_workflow_symbols()}["SPX"] == 50
    store.remove_link("SYN", "trademaster_research_pipeline")
    assert seed_demo_symbols(research, store) == []  # the DAG has links: the operator's list stands
    assert {entry.symbol: entry.links for entry in store.list_workflow_symbols(enabled_only=False)}["SYN"] == []
