"""What model calls cost (``review.model_client.prices``) and the spend limits (``review.budget``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from tmpipe.config.sections import ModelPrice


class BudgetExhausted(Exception):
    """A spend limit was reached before a model call; the review goes on with the rules model."""


def call_cost(usage: dict | None, price: ModelPrice | None) -> float | None:
    """USD for one call's token usage, None when the model has no price."""
    if price is None or usage is None:
        return None
    return (usage["prompt"] * price.prompt_per_1m + usage["completion"] * price.completion_per_1m) / 1e6


@dataclass
class CostBudget:
    """The symbol's and the DAG run's limits; ``spent_elsewhere`` is what the run's other symbols have spent so far.

    Checked before every call, so symbols reviewed in parallel each overshoot by at most the
    call they have in flight.
    """

    per_symbol_usd: float | None = None
    per_dag_run_usd: float | None = None
    spent_elsewhere: Callable[[], float] = field(default=lambda: 0.0)
    publish: Callable[[float], None] = field(default=lambda usd: None)

    def exhausted(self, own_usd: float) -> str | None:
        if self.per_symbol_usd is not None and own_usd >= self.per_symbol_usd:
            return f"review.budget.per_symbol_usd {self.per_symbol_usd:g} reached: this symbol spent {own_usd:.6f} USD"
        if self.per_dag_run_usd is not None:
            others = self.spent_elsewhere()
            if own_usd + others >= self.per_dag_run_usd:
                return (f"review.budget.per_dag_run_usd {self.per_dag_run_usd:g} reached: the DAG run spent "
                        f"{own_usd + others:.6f} USD ({others:.6f} by its other symbols)")
        return None
