"""The artifacts-store interface, and symbol selection that works on any store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tmpipe.store.models import Artifact, ArtifactCreate, ArtifactRevision, LinkUpdate, SymbolUpdate, WorkflowLink, WorkflowSymbol


class ArtifactStore(Protocol):
    """Implemented by the HTTP client and the embedded SQLite store, with equal semantics."""

    def list_workflow_symbols(self, enabled_only: bool = True) -> list[WorkflowSymbol]: ...

    def add_symbol(self, symbol: str, *, priority: int = 100, enabled: bool = True) -> WorkflowSymbol: ...

    def add_link(
        self, symbol: str, dag_id: str, *, config: dict[str, Any] | None = None, active: bool = True, notes: str | None = None
    ) -> WorkflowLink: ...

    def update_symbol(self, symbol: str, changes: SymbolUpdate) -> WorkflowSymbol: ...

    def remove_symbol(self, symbol: str) -> None: ...

    def update_link(self, symbol: str, dag_id: str, changes: LinkUpdate) -> WorkflowLink: ...

    def remove_link(self, symbol: str, dag_id: str) -> None: ...

    def save_artifact(self, artifact: ArtifactCreate) -> Artifact: ...

    def set_lineage(self, artifact_id: int, mlflow_run_id: str, mlflow_experiment_id: str) -> Artifact: ...

    def list_revisions(self, artifact_id: int) -> list[ArtifactRevision]: ...

    def list_artifacts(
        self,
        *,
        dag_id: str | None = None,
        dag_run_id: str | None = None,
        symbol: str | None = None,
        artifact_type: str | None = None,
    ) -> list[Artifact]: ...


@dataclass(frozen=True)
class SelectedSymbol:
    """A symbol chosen for a run, with its link's config layer and notes."""

    symbol: str
    link_id: int | None
    link_config: dict[str, Any]
    notes: str | None


def select_symbols(symbols: list[WorkflowSymbol], dag_id: str) -> list[SelectedSymbol]:
    """Enabled symbols with an active link to ``dag_id``, by priority then name (the caller caps them)."""
    chosen = []
    for entry in sorted(symbols, key=lambda s: (s.priority, s.symbol)):
        link = next((candidate for candidate in entry.links if candidate.dag_id == dag_id and candidate.is_active), None)
        if entry.enabled and link is not None:
            chosen.append(SelectedSymbol(entry.symbol, link.id, link.config, link.notes))
    return chosen


def find_link(symbols: list[WorkflowSymbol], symbol: str, dag_id: str) -> SelectedSymbol:
    """The link layer for one symbol (empty when the symbol has no active link)."""
    for entry in symbols:
        if entry.symbol == symbol:
            link = next((candidate for candidate in entry.links if candidate.dag_id == dag_id and candidate.is_active), None)
            if link is not None:
                return SelectedSymbol(symbol, link.id, link.config, link.notes)
    return SelectedSymbol(symbol, None, {}, None)
