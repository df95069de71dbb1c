"""`tmpipe webui add-symbol` / `list` on the embedded store and, with --url, on the real server."""

import json

import pytest

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


def symbols(runner, *url_args):
    listed = runner.invoke(main, ["webui", "list", *url_args])
    assert listed.exit_code == 0, listed.output
    return {e["symbol"]: e for e in map(json.loads, listed.stdout.splitlines())}


def links(entry):
    return {l["dag_id"]: l["is_active"] for l in entry["links"]}


def test_add_symbol_links_to_another_dag_and_to_a_second_one_later(tmpipe_home):
    runner = CliRunner()
    first = runner.invoke(main, ["webui", "add-symbol", "AAA", "--dag-id", "desk_b", "--priority", "3"])
    assert (first.exit_code, first.stdout) == (0, "added AAA; linked AAA to desk_b\n")
    again = runner.invoke(main, ["webui", "add-symbol", "AAA", "--dag-id", "desk_c", "--config", '{"trademaster": {"epochs": 2}}'])
    assert again.exit_code == 0, again.output
    assert again.stdout == "linked AAA to desk_c (the symbol existed; its priority and state are unchanged)\n"
    entry = symbols(runner)["AAA"]
    assert entry["priority"] == 3 and links(entry) == {"desk_b": True, "desk_c": True}
    assert entry["links"][1]["config"] == {"trademaster": {"epochs": 2}}
    duplicate = runner.invoke(main, ["webui", "add-symbol", "AAA", "--no-link"])
    assert (duplicate.exit_code, duplicate.stderr) == (1, "symbol AAA already exists\n")


def test_a_bad_dag_id_is_one_line_before_any_request():
    url = f"http://127.0.0.1:{free_port()}"  # never asked
    result = CliRunner().invoke(main, ["webui", "add-symbol", "AAA", "--dag-id", "a/b", "--url", url])
    assert (result.exit_code, result.stderr) == (1, "invalid dag_id 'a/b': use 1-250 letters, digits or . _ -\n")


def test_enable_disable_and_remove_over_http(webui_server, monkeypatch):
    monkeypatch.setenv("TMPIPE_WEBUI_TOKEN", WEBUI_TOKEN)
    runner, url = CliRunner(), ["--url", webui_server]
    assert runner.invoke(main, ["webui", "add-symbol", "AAA", *url]).exit_code == 0
    assert runner.invoke(main, ["webui", "add-symbol", "AAA", "--dag-id", "desk_b", *url]).exit_code == 0
    off = runner.invoke(main, ["webui", "disable", "AAA", *url])
    assert (off.exit_code, off.stdout) == (0, "disabled AAA\n")
    assert symbols(runner, *url)["AAA"]["enabled"] is False
    assert runner.invoke(main, ["webui", "enable", "AAA", *url]).exit_code == 0
    link_off = runner.invoke(main, ["webui", "disable", "AAA", "--dag-id", "desk_b", *url])
    assert (link_off.exit_code, link_off.stdout) == (0, "disabled the link from AAA to desk_b\n")
    entry = symbols(runner, *url)["AAA"]
    assert entry["enabled"] is True and links(entry) == {"trademaster_autogen_pipeline_workflow": True, "desk_b": False}
    unlinked = runner.invoke(main, ["webui", "remove", "AAA", "--dag-id", "desk_b", *url])
    assert (unlinked.exit_code, unlinked.stdout) == (0, "removed the link from AAA to desk_b\n")
    assert links(symbols(runner, *url)["AAA"]) == {"trademaster_autogen_pipeline_workflow": True}
    removed = runner.invoke(main, ["webui", "remove", "AAA", *url])
    assert (removed.exit_code, removed.stdout) == (0, "removed AAA and its links (its artifacts stay)\n")
    assert symbols(runner, *url) == {}
    missing = runner.invoke(main, ["webui", "disable", "AAA", *url])
    assert missing.exit_code == 1
    assert missing.stderr == f"PATCH {webui_server}/api/workflow-symbols/AAA/: 404 not found: no workflow symbol AAA\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["enable", "ZZZ"], "no workflow symbol ZZZ"),
        (["remove", "ZZZ"], "no workflow symbol ZZZ"),
        (["disable", "AAA", "--dag-id", "desk_b"], "no link from workflow symbol AAA to DAG desk_b"),
        (["remove", "AAA", "--dag-id", "desk_b"], "no link from workflow symbol AAA to DAG desk_b"),
    ],
)
def test_unknown_symbols_and_links_are_one_line_on_the_embedded_store(tmpipe_home, args, message):
    runner = CliRunner()
    assert runner.invoke(main, ["webui", "add-symbol", "AAA"]).exit_code == 0
    result = runner.invoke(main, ["webui", *args])
    assert (result.exit_code, result.stderr) == (1, message + "\n")
