"""resolve_symbols: which symbols this run covers, each one's WebUI link layer, and what the cap dropped."""

from __future__ import annotations

from typing import Any

from .base import TmpipeOperator
from tmpipe.pipeline import stages
from tmpipe.pipeline.context import RunContext

LINKS_KEY = "links"
# {"dropped": [...], "no_symbols": str | None}: read by summarize.
SELECTION_KEY = "selection"


class ResolveSymbolsOperator(TmpipeOperator):
    """Returns the list of symbols to map over; pushes their link layers under ``links``."""

    def run_stage(self, ctx: RunContext, context: Any) -> list[str]:
        selection = stages.resolve_symbols(ctx)
        context["ti"].xcom_push(key=LINKS_KEY, value=selection.links)
        context["ti"].xcom_push(key=SELECTION_KEY, value={"dropped": selection.dropped, "no_symbols": selection.no_symbols})
        return selection.symbols
