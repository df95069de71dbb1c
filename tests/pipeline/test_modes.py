"""The one table of mode -> stages agrees with the mode schema and drives the skips."""

import pytest

from tmpipe.errors import ModeError
from tmpipe.pipeline import modes
from tmpipe.spec import schemas


def test_the_table_has_exactly_the_modes_the_schema_allows():
    assert tuple(schemas.schema("urn:tmpipe:mode")["enum"]) == modes.MODES


def test_every_mode_runs_a_contiguous_part_of_the_chain_in_order():
    for mode, stages in modes.STAGES_BY_MODE.items():
        start = modes.STAGES.index(stages[0])
        assert stages == modes.STAGES[start : start + len(stages)], mode


def test_first_and_last_stage_and_whether_the_run_trains():
    assert [(modes.first_stage(m), modes.last_stage(m), modes.trains(m)) for m in modes.MODES] == [
        ("train_backtest", "persist", True),
        ("train_backtest", "train_backtest", True),
        ("inference", "persist", False),
    ]


def test_an_unknown_mode_names_the_valid_ones():
    with pytest.raises(ModeError, match=r"^unknown mode 'fast'; valid modes: both, train_backtest, inference$"):
        modes.runs("fast", "review")
