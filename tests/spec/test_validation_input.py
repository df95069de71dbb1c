"""Validation rejects what JSON Schema alone lets through: NaN, infinities, a symbol with a newline."""

import json
import re
from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tmpipe.cli import main
from tmpipe.errors import SpecError
from tmpipe.pipeline.context import check_conf
from tmpipe.spec import schemas
from tmpipe.spec.validation import validate_data
from tmpipe.symbols import validate_symbol

SHIPPED = Path(__file__).resolve().parents[2] / "dag_specs/trademaster_autogen_pipeline_workflow.yaml"
APPENDED = len(SHIPPED.read_text().splitlines()) + 1  # first line added after the shipped spec
# Numeric settings with an open or no bound, where NaN passes every JSON Schema comparison.
NUMERIC = [
    ("trademaster", "learning_rate"),
    ("trademaster", "transaction_cost_pct"),
    ("review", "timeout_seconds"),
    ("webui", "timeout_seconds"),
]


def _explain(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["explain", "--symbol", "SPX", "--json", *args], env=env)


# --- bullet 4: NaN and infinities, from every layer -------------------------------------


@pytest.mark.parametrize("section, key", NUMERIC)
@pytest.mark.parametrize("yaml_value, word", [(".nan", "NaN"), (".inf", "infinity"), ("-.inf", "-infinity")])
def test_spec_rejects_non_finite_numbers(tmp_path, section, key, yaml_value, word):
    text = SHIPPED.read_text() + f"  SPX:\n    {section}:\n      {key}: {yaml_value}\n"
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{path}:{APPENDED + 2}:{9 + len(key)}: symbols.SPX.{section}.{key}: {word} is not allowed: numbers must be finite"]


@pytest.mark.parametrize("token, word", [("NaN", "NaN"), ("Infinity", "infinity"), ("-Infinity", "-infinity"), ("1e999", "infinity")])
def test_conf_and_link_config_json_reject_non_finite_numbers(token, word):
    conf = _explain("--conf", f'{{"config": {{"review": {{"thresholds": {{"min_sharpe": {token}}}}}}}}}')
    assert conf.exit_code == 1
    assert conf.stderr.splitlines() == [f"dag_run.conf:1:1: config.review.thresholds.min_sharpe: {word} is not allowed: numbers must be finite"]
    link = _explain("--link-config", f'{{"trademaster": {{"learning_rate": {token}}}}}')
    assert link.exit_code == 1
    assert link.stderr.splitlines() == [f"--link-config:1:1: trademaster.learning_rate: {word} is not allowed: numbers must be finite"]


def test_environment_rejects_non_finite_numbers():
    result = _explain(env={"TMPIPE__REVIEW__MODEL_CLIENT__TIMEOUT_SECONDS": ".inf"})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "env:TMPIPE__REVIEW__MODEL_CLIENT__TIMEOUT_SECONDS:1:1: review.model_client.timeout_seconds: infinity is not allowed: numbers must be finite"
    ]


def test_webui_link_config_with_nan_is_not_stored(tmpipe_home):
    runner = CliRunner()
    added = runner.invoke(main, ["webui", "add-symbol", "SPX", "--config", '{"webui": {"timeout_seconds": NaN}}'])
    assert added.exit_code == 1
    assert added.stderr.splitlines() == ["--config:1:1: webui.timeout_seconds: NaN is not allowed: numbers must be finite"]
    assert runner.invoke(main, ["webui", "list"]).stdout == ""


def test_dag_run_conf_with_nan_anywhere_is_rejected():
    with pytest.raises(SpecError) as raised:
        check_conf({"max_symbols": 2, "config": {"data": {"bars_per_year": float("nan")}}})
    assert str(raised.value) == "dag_run.conf:1:1: config.data.bars_per_year: NaN is not allowed: numbers must be finite"


# --- bullet 5: "SPX\n" and other trailing newlines ----------------------------------------


def test_a_symbol_with_a_trailing_newline_is_rejected_everywhere(tmp_path):
    conf = validate_data({"symbol": "SPX\n", "symbols": ["NDX\n"]}, schemas.DAG_RUN_CONF, file="dag_run.conf")
    assert [p.path for p in conf] == ["symbol", "symbols[0]"]
    path = tmp_path / "spec.yaml"
    path.write_text(SHIPPED.read_text() + '  "SPX\\n": {}\n')
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.stdout.splitlines() == [
        f"{path}:{APPENDED}:3: symbols[\"SPX\\n\"]: invalid symbol name 'SPX\\n': Letters, digits and . _ - = ^ only, "
        "so that a symbol is always safe inside a path, a tag or a task label."
    ]
    assert validate_symbol("SPX") == "SPX"


def _schema_patterns() -> list[str]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.append(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    root = files("tmpipe.schemas")
    for entry in [*root.iterdir(), *root.joinpath("sections").iterdir()]:
        if entry.name.endswith(".schema.json"):
            walk(json.loads(entry.read_text(encoding="utf-8")))
    return sorted(set(found))


@pytest.mark.parametrize("pattern", _schema_patterns())
def test_no_schema_pattern_accepts_a_trailing_newline(pattern):
    checker = Draft202012Validator({"type": "string", "pattern": pattern})
    matching = st.from_regex(re.compile(pattern.removesuffix("(?!\\n)")), fullmatch=True)

    @settings(max_examples=20, deadline=None, database=None)
    @given(matching)
    def check(text):
        assert checker.is_valid(text)
        assert not checker.is_valid(text + "\n")

    check()


# --- bullet 9: a bad conf.symbol says why, not "is not of type 'null'" ----------------------


@pytest.mark.parametrize(
    "conf, expected",
    [
        ({"symbol": "a/b"}, "symbol: invalid symbol name 'a/b': Letters, digits and . _ - = ^ only, so that a symbol is always safe inside a path, a tag or a task label."),
        ({"symbols": ["SPX", "a b"]}, "symbols[1]: invalid symbol name 'a b': Letters, digits and . _ - = ^ only, so that a symbol is always safe inside a path, a tag or a task label."),
        ({"max_symbols": 0}, "max_symbols: 0 is less than the minimum of 1"),
        ({"symbol": 5}, "symbol: 5 is not of type 'string' or 'null'"),
    ],
)
def test_any_of_errors_name_the_alternative_that_fits_the_value(conf, expected):
    result = _explain("--conf", json.dumps(conf))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"dag_run.conf:1:1: {expected}"]


def test_a_key_with_a_line_break_is_still_one_problem_line():
    result = _explain("--conf", '{"config": {"data": {"a\\rb\\u2028c": 1}}}')
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'dag_run.conf:1:1: config.data["a\\rb\\u2028c"]: unknown key \'a\\rb\\u2028c\' (allowed: bars_per_year, '
        "demo_series, end, lookback, path, source, start, synthetic_rows, synthetic_seed, test_ratio, valid_ratio)"
    ]
