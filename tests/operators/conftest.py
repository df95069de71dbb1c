"""Operators as units: ``execute`` with a small in-memory task instance in place of Airflow's.

The task instance is the operators' only Airflow edge (XCom in and out, run identity); the
stages behind them run for real on the embedded MLflow and WebUI stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from ..pipeline.conftest import DAG_ID

GROUP = "symbol_chain"


@dataclass
class MemoryTaskInstance:
    """XCom as a dict keyed by (task_id, map_index, key), shared by the tasks of one DAG run."""

    task_id: str
    xcoms: dict[tuple[str, int, str], Any]
    map_index: int = -1
    dag_id: str = DAG_ID
    run_id: str = "manual__2024-06-03T00:00:00+00:00"
    try_number: int = 1
    log_url: str | None = None
    pushed: list[str] = field(default_factory=list)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[(self.task_id, self.map_index, key)] = value
        self.pushed.append(key)

    def xcom_pull(self, task_ids, key: str = "return_value", map_indexes: int | None = None) -> Any:
        index = -1 if map_indexes is None else map_indexes
        if isinstance(task_ids, str):
            return self.xcoms.get((task_ids, index, key))
        return [self.xcoms.get((task_id, index, key)) for task_id in task_ids]


class DagRunMemory:
    """Runs operators one after another as the tasks of one DAG run with ``conf``."""

    def __init__(self, conf: dict[str, Any]):
        self.conf = conf
        self.xcoms: dict[tuple[str, int, str], Any] = {}

    def execute(self, operator, map_index: int = -1) -> Any:
        ti = MemoryTaskInstance(operator.task_id, self.xcoms, map_index)
        context = {"ti": ti, "dag_run": SimpleNamespace(conf=self.conf), "logical_date": None}
        value = operator.execute(context)
        if value is not None:
            self.xcoms[(operator.task_id, map_index, "return_value")] = value
        return value


@pytest.fixture
def operators(airflow_settings):
    """``tmpipe.operators``, imported once Airflow's environment is set."""
    from tmpipe.operators import stages, summary, symbols

    return SimpleNamespace(stages=stages, summary=summary, symbols=symbols)
