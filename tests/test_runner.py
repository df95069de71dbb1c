"""tmpipe.runner's filter of dag.test()'s wait warning: one line per change in what waits for a
retry, and any other such warning shown as it is."""

import logging
from dataclasses import dataclass

import pytest

from tmpipe.runner import RetryWaitLines

WARNING = "No tasks to run. unrunnable tasks: %s"


def record(*tis) -> logging.LogRecord:
    return logging.LogRecord("airflow.sdk.definitions.dag", logging.WARNING, __file__, 1, WARNING, (set(tis),), None)


@dataclass(frozen=True)
class Ti:
    """What the warning's set holds, by the attributes the filter reads: task instances."""

    task_id: str
    state: str | None
    map_index: int = -1


@pytest.fixture
def shown(caplog):
    caplog.set_level(logging.INFO, logger="tmpipe.runner")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "tmpipe.runner"]


def test_a_retry_wait_shows_once_per_change_in_what_waits(shown):
    lines = RetryWaitLines()
    downstream = Ti("symbol_chain.inference", None, 1)
    assert not lines.filter(record(Ti("symbol_chain.train_backtest", "up_for_retry", 1), downstream))
    assert not lines.filter(record(Ti("symbol_chain.train_backtest", "up_for_retry", 1), downstream))  # the next second
    assert not lines.filter(record(Ti("symbol_chain.train_backtest", "up_for_retry", 1), Ti("score_signals", "up_for_retry")))
    assert shown() == [
        "waiting for the retry delay (dag.retry_delay_seconds) of symbol_chain.train_backtest[1]",
        "waiting for the retry delay (dag.retry_delay_seconds) of score_signals, symbol_chain.train_backtest[1]",
    ]


def test_a_wait_for_anything_but_a_retry_is_shown_as_airflow_logged_it(shown):
    lines = RetryWaitLines()
    assert lines.filter(record(Ti("symbol_chain.train_backtest", "queued", 0)))
    assert lines.filter(logging.LogRecord("airflow.sdk.definitions.dag", logging.INFO, __file__, 1, "starting dagrun", (), None))
    assert shown() == []
