"""resolve_symbols: which symbols this run covers, and each one's WebUI link layer."""

from __future__ import annotations

from typing import Any

from tmpipe.operators.base import TmpipeOperator
from tmpipe.pipeline import stages
from tmpipe.pipeline.context import RunContext

LINKS_KEY = "links"


class ResolveSymbolsOperator(TmpipeOperator):
    """Returns the list of symbols to map over; pushes their link layers under ``links``."""

    def run_stage(self, ctx: RunContext, context: Any) -> list[str]:
        symbols, links = stages.resolve_symbols(ctx)
        context["ti"].xcom_push(key=LINKS_KEY, value=links)
        if not symbols:
            self.log.warning("no symbols to run: none enabled with an active link to %s", ctx.dag_id)
        return symbols
