"""Wire models of the WebUI backend API, shared by the client, the embedded store and the server."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tmpipe.symbols import SYMBOL_PATTERN

ArtifactType = Literal["signal", "llm", "signal_score"]
SymbolName = Field(pattern=SYMBOL_PATTERN.pattern, description="Validated symbol name.")


class WorkflowLink(BaseModel):
    id: int
    dag_id: str
    is_active: bool = True
    config: dict[str, Any] = Field(default_factory=dict, description="Stage config fragment (schemas/stage_config.schema.json).")
    notes: str | None = None


class WorkflowSymbol(BaseModel):
    id: int
    symbol: str = SymbolName
    enabled: bool = True
    priority: int = Field(100, description="Lower runs first.")
    links: list[WorkflowLink] = Field(default_factory=list)


class SymbolCreate(BaseModel):
    symbol: str = SymbolName
    enabled: bool = True
    priority: int = 100


class LinkCreate(BaseModel):
    dag_id: str
    is_active: bool = True
    config: dict[str, Any] = Field(default_factory=dict)
    notes: str | None = None


class SymbolUpdate(BaseModel):
    """Fields left out stay as they are."""

    enabled: bool | None = None
    priority: int | None = Field(None, description="Lower runs first.")


class LinkUpdate(BaseModel):
    """Fields left out stay as they are; a ``config`` given replaces the whole config and is validated like a new link's."""

    is_active: bool | None = None
    config: dict[str, Any] | None = Field(None, description="Stage config fragment (schemas/stage_config.schema.json).")
    notes: str | None = None


class ArtifactCreate(BaseModel):
    """Writes are idempotent per (dag_id, dag_run_id, symbol, artifact_type) for ``signal`` and ``llm``.

    A ``signal_score`` is written under the scoring run's ``dag_id`` and ``dag_run_id`` and names
    the graded ``signal`` artifact in ``graded_signal_id``; writes are idempotent per graded
    signal, and a signal already graded by another run is refused (409): each signal is graded
    once, and one scoring run may grade many signals of a symbol.

    ``content`` must validate against its type's schema: ``signal`` against
    schemas/trading_signal.schema.json, ``llm`` against schemas/llm_artifact.schema.json,
    ``signal_score`` against schemas/signal_score.schema.json.
    """

    dag_id: str
    dag_run_id: str
    symbol: str = SymbolName
    artifact_type: ArtifactType
    content: dict[str, Any]
    graded_signal_id: int | None = Field(
        None, description="signal_score only (and required there): the id of the graded signal artifact, "
                          "the same as content.signal.artifact_id; null for other types.")


class LineageUpdate(BaseModel):
    mlflow_run_id: str
    mlflow_experiment_id: str


class Artifact(ArtifactCreate):
    id: int
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    revision: int = Field(1, description="Version of this artifact; each replaced content or lineage bumps it.")
    created_at: datetime
    updated_at: datetime


class ArtifactRevision(BaseModel):
    """A replaced version of an artifact: what it held until ``replaced_at``, and what replaced it."""

    revision: int
    content: dict[str, Any]
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    written_at: datetime = Field(description="When this version was written.")
    replaced_at: datetime
    replaced_by: Literal["content", "lineage"] = Field(description="The kind of write that replaced it.")
