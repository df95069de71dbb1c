"""`tmpipe webui add-symbol` / `list` on the embedded store and, with --url, on the real server."""

import json

from click.testing import CliRunner

from tmpipe.cli import main

from ..servers import WEBUI_TOKEN, free_port


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


def test_url_commands_send_the_token_from_the_environment_or_a_file(webui_server, tmp_path, monkeypatch):
    runner = CliRunner()
    monkeypatch.setenv("TMPIPE_WEBUI_TOKEN", WEBUI_TOKEN)
    added = runner.invoke(main, ["webui", "add-symbol", "AAA", "--url", webui_server, "--config", '{"trademaster": {"epochs": 2}}'])
    assert added.exit_code == 0, added.output
    monkeypatch.delenv("TMPIPE_WEBUI_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(WEBUI_TOKEN + "\n")
    listed = runner.invoke(main, ["webui", "list", "--url", webui_server, "--token-file", str(token_file)])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["links"][0]["config"] == {"trademaster": {"epochs": 2}}


def test_url_commands_without_the_token_fail_in_one_line(webui_server, monkeypatch):
    monkeypatch.delenv("TMPIPE_WEBUI_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["webui", "list", "--url", webui_server])
    assert result.exit_code == 1
    assert result.stderr == f"GET {webui_server}/api/workflow-symbols/: HTTP 401: missing bearer token\n"


def test_a_server_that_is_down_is_one_line_not_a_traceback(monkeypatch):
    monkeypatch.delenv("TMPIPE_WEBUI_TOKEN", raising=False)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = CliRunner().invoke(main, ["webui", "list", "--url", url])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"GET {url}/api/workflow-symbols/: ConnectError: ") and result.stderr.count("\n") == 1


def test_an_invalid_symbol_is_one_line_before_any_request(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"  # never asked
    result = CliRunner().invoke(main, ["webui", "add-symbol", "a/b", "--url", url])
    assert result.exit_code == 1
    assert result.stderr == "invalid symbol 'a/b': use 1-32 letters, digits or . _ - = ^, starting with a letter, digit or ^\n"
