"""One independent chain of stages per symbol: a mapped task group dag-factory can build.

dag-factory 1.1 has no mapped task groups, but its ``decorator:`` hook calls
``decorator(python_callable=..., task_id=..., dag=...)`` and then ``.partial(...).expand(...)``
on the result. ``symbol_chain_group`` adapts that call to ``@task_group``, so each symbol's
train_backtest -> inference -> review -> persist runs as soon as its own upstream is done and
one symbol's failure does not hold back another (chained mapped tasks would wait for every
instance of the previous stage).
"""

from __future__ import annotations

from typing import Any, Callable

from airflow.sdk import BaseOperator, task_group
from airflow.sdk.definitions.dag import DAG

from .stages import InferenceOperator, PersistOperator, ReviewOperator, TrainBacktestOperator

# Each task instance is labelled by its symbol in the Airflow UI.
MAP_INDEX_TEMPLATE = "{{ task.symbol }}"


def symbol_chain_group(*, python_callable: Callable[..., Any], task_id: str, dag: DAG, **task_group_kwargs: Any):
    """dag-factory ``decorator:`` adapter: a task group factory named ``task_id``."""
    return _MappableGroup(task_group(group_id=task_id, **task_group_kwargs)(python_callable), dag)


class _MappableGroup:
    """Builds the group inside ``with dag:`` (outside it, Airflow registers each task twice,
    once without the group prefix) and turns dag-factory's ``+task`` operators into outputs."""

    def __init__(self, factory: Any, dag: DAG):
        self._factory = factory
        self._dag = dag

    def partial(self, **kwargs: Any) -> "_MappableGroup":
        return _MappableGroup(self._factory.partial(**kwargs), self._dag)

    def expand(self, **kwargs: Any) -> Any:
        with self._dag:
            return self._factory.expand(**{k: v.output if isinstance(v, BaseOperator) else v for k, v in kwargs.items()})


def build_symbol_chain(symbol: str, spec_path: str) -> None:
    """The body of the mapped group; ``symbol`` arrives as a mapped argument."""
    common = {"symbol": symbol, "spec_path": spec_path, "map_index_template": MAP_INDEX_TEMPLATE}
    train = TrainBacktestOperator(task_id="train_backtest", **common)
    # none_failed: runs after a skipped train_backtest (mode inference), not after a failed one.
    infer = InferenceOperator(task_id="inference", trigger_rule="none_failed", **common)
    review = ReviewOperator(task_id="review", **common)
    persist = PersistOperator(task_id="persist", **common)
    train >> infer >> review >> persist
