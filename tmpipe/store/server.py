"""The WebUI backend API served over the embedded store (`tmpipe webui serve`).

It documents, by its OpenAPI schema, the contract the HTTP client expects of the real
WebUI backend.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Response, status

from tmpipe.errors import NotFoundError, StoreError
from tmpipe.store.models import Artifact, ArtifactCreate, LineageUpdate, LinkCreate, SymbolCreate, WorkflowLink, WorkflowSymbol
from tmpipe.store.sqlite import SqliteArtifactStore


def create_app(store: SqliteArtifactStore) -> FastAPI:
    app = FastAPI(title="tmpipe WebUI artifacts API", version="1", description=__doc__)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/api/workflow-symbols/", response_model=list[WorkflowSymbol])
    def list_symbols(enabled_only: bool = True) -> list[WorkflowSymbol]:
        return store.list_workflow_symbols(enabled_only=enabled_only)

    @app.post("/api/workflow-symbols/", response_model=WorkflowSymbol, status_code=status.HTTP_201_CREATED)
    def add_symbol(body: SymbolCreate) -> WorkflowSymbol:
        with _http_errors():
            return store.add_symbol(body.symbol, priority=body.priority, enabled=body.enabled)

    @app.post("/api/workflow-symbols/{symbol}/links/", response_model=WorkflowLink, status_code=status.HTTP_201_CREATED)
    def add_link(symbol: str, body: LinkCreate) -> WorkflowLink:
        with _http_errors():
            return store.add_link(symbol, body.dag_id, config=body.config, active=body.is_active, notes=body.notes)

    @app.post("/api/artifacts/", response_model=Artifact, status_code=status.HTTP_201_CREATED)
    def save_artifact(body: ArtifactCreate, response: Response) -> Artifact:
        artifact = store.save_artifact(body)
        if artifact.created_at != artifact.updated_at:
            response.status_code = status.HTTP_200_OK  # an idempotent retry updated the existing one
        return artifact

    @app.get("/api/artifacts/", response_model=list[Artifact])
    def list_artifacts(
        dag_id: str | None = None, dag_run_id: str | None = None, symbol: str | None = None, artifact_type: str | None = None
    ) -> list[Artifact]:
        return store.list_artifacts(dag_id=dag_id, dag_run_id=dag_run_id, symbol=symbol, artifact_type=artifact_type)

    @app.get("/api/artifacts/{artifact_id}/", response_model=Artifact)
    def get_artifact(artifact_id: int) -> Artifact:
        with _http_errors():
            return store.get_artifact(artifact_id)

    @app.patch("/api/artifacts/{artifact_id}/", response_model=Artifact)
    def set_lineage(artifact_id: int, body: LineageUpdate) -> Artifact:
        with _http_errors():
            return store.set_lineage(artifact_id, body.mlflow_run_id, body.mlflow_experiment_id)

    return app


class _http_errors:
    """Map store errors to HTTP statuses."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if isinstance(exc, NotFoundError):
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        if isinstance(exc, StoreError):
            raise HTTPException(exc.status or status.HTTP_400_BAD_REQUEST, str(exc)) from exc
        return False
