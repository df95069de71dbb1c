"""How many symbols a DAG run takes, and the spec's ``symbol_selection`` policy for none or too many.

A run never drops or skips symbols silently: symbols beyond the cap are named, and a run with
nothing to do fails unless the spec says that is fine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tmpipe.errors import SymbolSelectionError
from tmpipe.spec.model import Spec
from tmpipe.store.base import ArtifactStore
from tmpipe.store.http import HttpArtifactStore
from tmpipe.store.sqlite import SqliteArtifactStore
from tmpipe.store.models import WorkflowSymbol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SymbolSelection:
    symbols: list[str]
    links: dict[str, dict[str, Any]]
    # Symbols beyond the cap, in the order they would have run.
    dropped: list[str]
    # Why the run has no symbol, when the spec lets such a run succeed.
    no_symbols: str | None = None


def symbol_cap(spec: Spec, conf: dict[str, Any]) -> tuple[int, str]:
    """The run's symbol cap and the setting it comes from (conf may only lower the spec's)."""
    limit = spec.limits.max_symbols
    asked = conf.get("max_symbols")
    if asked is not None and asked < limit:
        return asked, "dag_run.conf max_symbols"
    return limit, "limits.max_symbols"


def cap_named_symbols(spec: Spec, names: list[str], cap: int, cap_source: str) -> tuple[list[str], list[str]]:
    """(kept, dropped) of the symbols a trigger named; too many fail unless the spec truncates."""
    kept, dropped = names[:cap], names[cap:]
    if dropped and spec.symbol_selection.on_too_many_symbols == "fail":
        raise SymbolSelectionError(
            f"dag_run.conf names {len(names)} symbols but {cap_source} is {cap}, so these would not run: "
            f"{', '.join(dropped)}; name at most {cap}, or set symbol_selection.on_too_many_symbols: truncate "
            f"in {spec.path}"
        )
    return kept, dropped


def handle_no_symbols(spec: Spec, store: ArtifactStore) -> str:
    """The message for a run with no symbol; raises it unless ``on_no_symbols: succeed``."""
    dag_id = spec.dag.dag_id
    if isinstance(store, HttpArtifactStore):
        query = f"the WebUI (GET {store.base_url}/api/workflow-symbols/?enabled_only=true)"
    elif isinstance(store, SqliteArtifactStore):
        query = f"the embedded WebUI store ({store.path})"
    else:
        query = f"the WebUI store ({type(store).__name__})"
    message = (
        f"no symbols to run for DAG {dag_id}: {query} lists no enabled symbol with an active link to {dag_id}; "
        f"add one (tmpipe webui add-symbol SYM), name symbols in dag_run.conf, "
        f"or set symbol_selection.on_no_symbols: succeed in {spec.path}"
    )
    if spec.symbol_selection.on_no_symbols == "fail":
        raise SymbolSelectionError(message)
    log.warning("%s", message)
    return message


def log_dropped(dropped: list[str], cap: int, cap_source: str) -> None:
    if dropped:
        log.warning("%s = %d: %d symbols do not run in this DAG run: %s", cap_source, cap, len(dropped), ", ".join(dropped))


def warn_named_but_switched_off(known: list[WorkflowSymbol], names: list[str], dag_id: str) -> None:
    """A named symbol runs even if the WebUI disabled it or its link; say so, since selection would skip it."""
    by_name = {entry.symbol: entry for entry in known}
    for name in names:
        entry = by_name.get(name)
        if entry is None:
            continue
        link = next((candidate for candidate in entry.links if candidate.dag_id == dag_id), None)
        reasons = ["disabled in the WebUI"] if not entry.enabled else []
        if link is not None and not link.is_active:
            reasons.append(f"its WebUI link to {dag_id} is inactive, so its link config is not applied")
        if reasons:
            log.warning("%s: %s; it runs because dag_run.conf names it", name, " and ".join(reasons))
