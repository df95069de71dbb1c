"""`tmpipe webui add-symbol` / `list` on the embedded store; link configs are validated first."""

import json

from click.testing import CliRunner

from tmpipe.cli import main


def test_add_symbol_with_link_config_then_list(tmpipe_home):
    runner = CliRunner()
    added = runner.invoke(main, ["webui", "add-symbol", "ETH-USD", "--priority", "3", "--config", '{"trademaster": {"epochs": 2}}', "--notes", "desk B"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(main, ["webui", "list"])
    entry = json.loads(listed.stdout.strip())
    assert (entry["symbol"], entry["priority"]) == ("ETH-USD", 3)
    assert entry["links"][0]["dag_id"] == "trademaster_autogen_pipeline_workflow"
    assert entry["links"][0]["config"] == {"trademaster": {"epochs": 2}} and entry["links"][0]["notes"] == "desk B"


def test_add_symbol_rejects_an_invalid_link_config(tmpipe_home):
    result = CliRunner().invoke(main, ["webui", "add-symbol", "AAA", "--config", '{"trademaster": {"epoch": 2}}'])
    assert result.exit_code == 1
    assert result.stderr.strip() == "--config:1:1: trademaster.epoch: unknown key 'epoch' (did you mean 'epochs'?)"
    listed = CliRunner().invoke(main, ["webui", "list"])
    assert listed.stdout.strip() == ""
