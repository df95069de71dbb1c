"""`tmpipe validate` on the shipped spec and on broken specs: one exact line per problem."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from tmpipe.cli import main

BROKEN = Path(__file__).parent / "broken"

EXPECTED = {
    "bad_agent_role.yaml": [
        "{dir}/bad_agent_role.yaml:8:30: defaults.review.agents[1].role: 'trader' is not one of ['analyst', 'risk_manager', 'signal_writer']",
    ],
    "bad_backend_enum.yaml": [
        "{dir}/bad_backend_enum.yaml:6:14: defaults.trademaster.backend: 'tensorflow' is not one of ['builtin', 'upstream']",
    ],
    "bad_demo_symbol.yaml": [
        "{dir}/bad_demo_symbol.yaml:4:21: demo_symbols[1]: invalid symbol name 'BAD SYMBOL': Letters, digits and . _ - = ^ only, so that a symbol is always safe inside a path, a tag or a task label.",
    ],
    "bad_link_config.json": [
        "{dir}/bad_link_config.json:2:32: trademaster.seeds: unknown key 'seeds' (did you mean 'seed'?)",
        '{dir}/bad_link_config.json:3:47: review.thresholds.min_confidence: 1.5 is greater than the maximum of 1',
    ],
    "bad_mode.yaml": [
        "{dir}/bad_mode.yaml:5:12: modes.default: 'sideways' is not one of ['both', 'train_backtest', 'inference']",
    ],
    "bad_schema_version.yaml": [
        '{dir}/bad_schema_version.yaml:1:17: schema_version: 1 was expected',
    ],
    "bad_start_date.yaml": [
        "{dir}/bad_start_date.yaml:4:15: dag.start_date: invalid value '2024-13-45': month must be in 1..12",
    ],
    "bad_symbol_name.yaml": [
        '{dir}/bad_symbol_name.yaml:5:3: symbols["../etc/passwd"]: invalid symbol name \'../etc/passwd\': Letters, digits and . _ - = ^ only, so that a symbol is always safe inside a path, a tag or a task label.',
    ],
    "bad_type.yaml": [
        "{dir}/bad_type.yaml:6:13: defaults.trademaster.epochs: 'five' is not of type 'integer'",
    ],
    "duplicate_key.yaml": [
        "{dir}/duplicate_key.yaml:8:5: defaults.trademaster.epochs: duplicate key 'epochs' (first defined on line 6)",
    ],
    "epochs_over_limit.yaml": [
        '{dir}/epochs_over_limit.yaml:8:13: defaults.trademaster.epochs: 30 exceeds limits.max_epochs = 20',
    ],
    "lookback_over_limit_in_symbol.yaml": [
        '{dir}/lookback_over_limit_in_symbol.yaml:9:17: symbols.SPX.data.lookback: 60 exceeds limits.max_lookback = 30',
    ],
    "missing_dag.yaml": [
        "{dir}/missing_dag.yaml:1:1: $: 'dag' is a required key",
    ],
    "misspelt_epochs.yaml": [
        "{dir}/misspelt_epochs.yaml:6:5: defaults.trademaster.epoch: unknown key 'epoch' (did you mean 'epochs'?)",
    ],
    "misspelt_section.yaml": [
        "{dir}/misspelt_section.yaml:5:3: defaults.trademastr: unknown key 'trademastr' (did you mean 'trademaster'?)",
    ],
    "negative_cost.yaml": [
        '{dir}/negative_cost.yaml:6:27: defaults.trademaster.transaction_cost_pct: -0.01 is less than the minimum of 0',
    ],
    "operator_only_link_config.json": [
        "{dir}/operator_only_link_config.json:3:31: review.model_client.base_url: set only by the operator (spec or environment), not by the webui link config",
        "{dir}/operator_only_link_config.json:3:68: review.model_client.api_key_env: set only by the operator (spec or environment), not by the webui link config",
        "{dir}/operator_only_link_config.json:4:28: mlflow.promotion.max_drawdown: set only by the operator (spec or environment), not by the webui link config",
    ],
    "not_a_mapping.yaml": [
        '{dir}/not_a_mapping.yaml:1:1: $: a spec must be a mapping of keys such as dag, defaults, symbols',
    ],
    "secret_in_spec.yaml": [
        "{dir}/secret_in_spec.yaml:8:7: defaults.review.model_client.api_key: unknown key 'api_key' (did you mean 'api_key_env'?)",
    ],
    "several_errors.yaml": [
        "{dir}/several_errors.yaml:4:12: dag.retries: 'many' is not of type 'integer'",
        "{dir}/several_errors.yaml:7:5: defaults.data.lookbak: unknown key 'lookbak' (did you mean 'lookback'?)",
        '{dir}/several_errors.yaml:10:21: defaults.review.thresholds.max_drawdown: 2 is greater than the maximum of 1',
    ],
    "unknown_top_key.yaml": [
        "{dir}/unknown_top_key.yaml:4:1: schedules: unknown key 'schedules' (allowed: dag, defaults, demo_symbols, limits, modes, schema_version, security, symbol_selection, symbols)",
    ],
    "yaml_syntax_error.yaml": [
        "{dir}/yaml_syntax_error.yaml:4:9: $: YAML syntax error: this '[' is never closed: expected ',' or ']' before line 5, column 9",
    ],
}


def run_validate(*paths: str):
    return CliRunner().invoke(main, ["validate", *paths])


def test_shipped_spec_is_valid():
    result = run_validate("dag_specs")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_spec_reports_every_problem_with_position(name):
    result = run_validate(str(BROKEN / name))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [line.format(dir=BROKEN) for line in EXPECTED[name]]


def test_every_broken_file_has_an_expectation():
    assert sorted(p.name for p in BROKEN.iterdir()) == sorted(EXPECTED)
    assert len(EXPECTED) >= 15


def test_directory_reports_all_files_at_once():
    result = run_validate(str(BROKEN))
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == sum(len(lines) for lines in EXPECTED.values())
