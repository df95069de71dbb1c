"""TMPIPE__SECTION__KEY values: typed as YAML within the loader's limits, text where the schema wants text."""

import pytest

from tmpipe.config.layers import env_layer
from tmpipe.errors import SpecError


def _problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(SpecError) as raised:
        env_layer(environ)
    return [str(problem) for problem in raised.value.problems]


@pytest.mark.parametrize("text", ["2024-01-01", "ON", "0700", "12:30", "123", "2024-01-01T10:00:00", "#desk-1"])
def test_a_string_setting_keeps_the_text_as_written(text):
    assert env_layer({"TMPIPE__MLFLOW__EXPERIMENT": text}).values == {"mlflow": {"experiment": text}}


def test_typed_settings_still_get_their_types():
    layer = env_layer({
        "TMPIPE__TRADEMASTER__EPOCHS": "3",
        "TMPIPE__TRADEMASTER__ALLOW_SHORT": "false",
        "TMPIPE__DATA__PATH": "null",
        "TMPIPE__DATA__START": "2024-01-02",
        "TMPIPE__REVIEW__AGENTS": "[{name: solo, role: signal_writer}]",
    })
    assert layer.values == {
        "trademaster": {"epochs": 3, "allow_short": False},
        "data": {"path": None, "start": "2024-01-02"},
        "review": {"agents": [{"name": "solo", "role": "signal_writer"}]},
    }


def test_a_value_that_is_not_yaml_is_plain_text():
    assert env_layer({"TMPIPE__MLFLOW__EXPERIMENT": "desk: [a"}).values == {"mlflow": {"experiment": "desk: [a"}}


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"TMPIPE__TRADEMASTER__EPOCHS": "3", "TMPIPE__TRADEMASTER__EPOCHS__X": "1"},
         "env:TMPIPE__TRADEMASTER__EPOCHS__X:1:1: trademaster.epochs.x: conflicts with TMPIPE__TRADEMASTER__EPOCHS: a key is either a value or a section"),
        ({"TMPIPE__REVIEW__THRESHOLDS": "1", "TMPIPE__REVIEW__THRESHOLDS__MIN_SHARPE": "0.5"},
         "env:TMPIPE__REVIEW__THRESHOLDS__MIN_SHARPE:1:1: review.thresholds.min_sharpe: conflicts with TMPIPE__REVIEW__THRESHOLDS: a key is either a value or a section"),
    ],
)
def test_a_key_set_both_as_a_value_and_as_a_section_is_one_problem(environ, expected):
    assert expected in _problems(environ)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("!!python/object/apply:os.system [echo]",
         "env:TMPIPE__REVIEW__AGENTS:1:1: review.agents: the tag !!python/object/apply:os.system is not allowed: tags are not supported (quote a value to keep it a string)"),
        ("&a [*a]", "env:TMPIPE__REVIEW__AGENTS:1:1: review.agents: an alias refers to the list or mapping that contains it"),
        ("[" * 100 + "]" * 100, "env:TMPIPE__REVIEW__AGENTS:1:65: review.agents: nested deeper than 64 levels"),
    ],
)
def test_env_values_get_the_spec_loaders_limits(text, expected):
    assert _problems({"TMPIPE__REVIEW__AGENTS": text}) == [expected]
