"""`tmpipe diff OLD NEW` says what a spec edit changes, for the DAG and per symbol, with layers."""

from pathlib import Path

from click.testing import CliRunner

from tmpipe.cli import main

SHIPPED = Path(__file__).resolve().parent.parent / "dag_specs/trademaster_autogen_pipeline_workflow.yaml"
HEADING = ("Resolved config per symbol (schema defaults, spec defaults and spec symbols; "
           "the environment, dag_run.conf and WebUI links are not compared):")


def _diff(tmp_path, edit):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(SHIPPED.read_text())
    new.write_text(edit(SHIPPED.read_text()))
    return CliRunner().invoke(main, ["diff", str(old), str(new)])


def test_an_unchanged_spec_exits_0_with_nothing_on_stdout(tmp_path):
    result = _diff(tmp_path, lambda text: text.replace("# TradeMaster + AutoGen pipeline spec.", "# reworded comment"))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no change" in result.stderr


def test_known_edits_give_the_expected_lines(tmp_path):
    def edit(text):
        text = text.replace("schedule: null ", 'schedule: "@daily" ')
        text = text.replace("    epochs: 5\n", "    epochs: 8\n")
        text = text.replace("  max_symbols: 10 ", "  max_symbols: 4 ")
        text = text.replace("symbols:\n  NDX:\n    data:\n      demo_series: nasdaq\n",
                            "symbols:\n  SPX:\n    trademaster: {epochs: 3}\n  NDX:\n    trademaster: {epochs: 8}\n")
        return text

    result = _diff(tmp_path, edit)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "DAG trademaster_autogen_pipeline_workflow:",
        '  params.max_symbols.description changes from "At most this many symbols (limit 10; may lower it, not raise it)." '
        'to "At most this many symbols (limit 4; may lower it, not raise it)."',
        '  schedule changes from null to "@daily"',
        "Spec policy:",
        "  limits.max_symbols changes from 10 to 4",
        HEADING,
        "  every other symbol (not named in either spec):",
        "    trademaster.epochs changes from 5 (spec defaults) to 8 (spec defaults)",
        "  SPX:",
        "    trademaster.epochs changes from 5 (spec defaults) to 3 (spec symbols)",
        "  NDX:",
        '    data.demo_series changes from "nasdaq" (spec symbols) to "sp500" (spec defaults)',
        "    trademaster.epochs changes from 5 (spec defaults) to 8 (spec symbols)",
    ]


def test_a_value_moved_between_layers_is_named_once(tmp_path):
    result = _diff(tmp_path, lambda text: text.replace("      demo_series: nasdaq\n", "      demo_series: nasdaq\n    trademaster: {seed: 42}\n"))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [HEADING, "  NDX:", "    same value, now set by spec symbols instead of spec defaults: trademaster.seed"]


def test_a_spec_that_does_not_load_exits_2_with_its_line(tmp_path):
    result = _diff(tmp_path, lambda text: text.replace("    epochs: 5\n", "    epoch: 5\n"))
    assert result.exit_code == 2
    assert "new.yaml:" in result.stderr and "unknown key 'epoch' (did you mean 'epochs'?)" in result.stderr


def test_url_credentials_are_masked(tmp_path):
    result = _diff(tmp_path, lambda text: text.replace("tracking_uri: null ", "tracking_uri: https://bob:hunter2-secret@mlflow.example/ "))
    assert result.exit_code == 1
    assert '    mlflow.tracking_uri changes from null (spec defaults) to "https://bob:***@mlflow.example/" (spec defaults)' in result.stdout.splitlines()
    assert "hunter2" not in result.output
