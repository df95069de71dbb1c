"""Every user-facing command: an error is one line on stderr and a non-zero exit; --debug shows the traceback."""

import os

import pytest
from click.testing import CliRunner

from tmpipe.cli import main

from .bounded import run_tmpipe_bounded
from .servers import free_port

CASES = {
    "conf-file-missing": (["explain", "--symbol", "SPX", "--conf", "@missing.json"], {},
                          "Error: --conf: cannot read missing.json: No such file or directory"),
    "conf-too-deep": (["explain", "--symbol", "SPX", "--conf", "[" * 50_000 + "]" * 50_000], {},
                      "Error: --conf is nested too deeply"),
    "env-value-and-section": (["explain", "--symbol", "SPX"],
                              {"TMPIPE__TRADEMASTER__EPOCHS": "3", "TMPIPE__TRADEMASTER__EPOCHS__X": "1"},
                              "env:TMPIPE__TRADEMASTER__EPOCHS__X:1:1: trademaster.epochs.x: conflicts with "
                              "TMPIPE__TRADEMASTER__EPOCHS: a key is either a value or a section"),
    "unknown-demo-series": (["engine", "train-backtest", "--data", "demo:foo", "--symbol", "SPX", "--out", "{tmp}/out"], {},
                            "Error: --data: unknown demo series 'foo' (choose demo:sp500, demo:nasdaq, demo:synthetic, demo:planted, demo:random_walk)"),
    "bad-symbol": (["webui", "add-symbol", "a/b"], {},
                   "invalid symbol 'a/b': use 1-32 letters, digits or . _ - = ^, starting with a letter, digit or ^"),
    "home-is-a-file": (["webui", "list"], {"TMPIPE_HOME": "{tmp}/file"}, "Error: {tmp}/file/webui: Not a directory"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_error_is_one_line_on_stderr(tmp_path, tmpipe_home, name):
    args, env, expected = CASES[name]
    (tmp_path / "file").write_text("")
    args = [arg.format(tmp=tmp_path) for arg in args]
    result = CliRunner().invoke(main, args, env={k: v.format(tmp=tmp_path) for k, v in env.items()})
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.splitlines() == [expected.format(tmp=tmp_path)]


def test_a_server_that_is_down_is_one_line(tmpipe_home):
    url = f"http://127.0.0.1:{free_port()}"
    result = run_tmpipe_bounded("webui", "list", "--url", url)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"GET {url}/api/workflow-symbols/: ConnectError: [Errno 111] Connection refused" in line


def test_debug_shows_the_traceback_of_an_unexpected_error(tmp_path):
    home = tmp_path / "file"
    home.write_text("")
    env = {**os.environ, "TMPIPE_HOME": str(home)}
    plain = run_tmpipe_bounded("webui", "list", env=env)
    assert (plain.returncode, plain.stderr.splitlines()) == (1, [f"Error: {home}/webui: Not a directory"])
    debug = run_tmpipe_bounded("--debug", "webui", "list", env=env)
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.splitlines()[-1] == f"NotADirectoryError: [Errno 20] Not a directory: '{home}/webui'"
