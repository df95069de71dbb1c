"""The WebUI backend API served over the embedded store (`tmpipe webui serve`).

It documents, by its OpenAPI schema, the contract the HTTP client expects of the real
WebUI backend:

- Every route except `GET /api/health` and `GET /openapi.json` needs `Authorization: Bearer
  <token>`; without it the answer is 401 with a `WWW-Authenticate` challenge.
- A request body larger than the server's limit (10 MiB unless configured) is refused with
  413 before the rest of it is read.
- Artifact content must match its type's JSON Schema (`signal`: TradingSignal, `llm`: the
  review trace) and name the artifact's symbol; link configs must match the stage config
  schema. Otherwise the answer is 422 naming each field.
- Removing a symbol (`DELETE /api/workflow-symbols/{symbol}/`) deletes it and its links but
  keeps its artifacts and their revisions; removing a link deletes it (deactivate it instead,
  `PATCH` with `is_active: false`, to keep its config). An unknown symbol or link is 404.
- A `signal_score` is written under its scoring run's `dag_id` and `dag_run_id` and names the
  graded `signal` artifact in `graded_signal_id` (the same as `content.signal.artifact_id`; a
  signal of the same symbol and DAG run as the content says, else 422). A signal is graded
  once: a score of a signal another run has graded is refused with 409; the same run writing
  it again is the usual idempotent write.
- Nothing is replaced silently: writing different content to an existing artifact, or
  changing its lineage, keeps the previous version as a revision
  (`GET /api/artifacts/{artifact_id}/revisions/`) and bumps the artifact's `revision`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response, Security, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from tmpipe.errors import NotFoundError, StoreError
from tmpipe.store.auth import RequestGuard
from tmpipe.store.models import (
    Artifact,
    ArtifactCreate,
    ArtifactRevision,
    LineageUpdate,
    LinkCreate,
    LinkUpdate,
    SymbolCreate,
    SymbolUpdate,
    WorkflowLink,
    WorkflowSymbol,
)
from tmpipe.store.sqlite import SqliteArtifactStore

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

# Documents the scheme in the OpenAPI schema; RequestGuard enforces it before any body is read.
_BEARER = HTTPBearer(auto_error=False, description="The server's API token (TMPIPE_WEBUI_TOKEN or --token-file).")
_GUARDED: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong bearer token."},
    413: {"description": "Request body larger than the server's limit."},
}
_GRADED: dict[int | str, dict[str, Any]] = {409: {"description": "A signal_score of a signal that another run has graded."}}
_INVALID: dict[int | str, dict[str, Any]] = {422: {"description": "The body fails its model, or its content/config fails its JSON Schema; `detail` names each field."}}


def create_app(store: SqliteArtifactStore, *, token: str | None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The API over ``store``; ``token=None`` accepts anonymous requests (``--insecure``)."""
    app = FastAPI(title="tmpipe WebUI artifacts API", version="2", description=__doc__, docs_url=None, redoc_url=None)
    api = APIRouter(dependencies=[Security(_BEARER)], responses=_GUARDED)
    app.add_exception_handler(StoreError, _store_error_response)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    @api.get("/api/workflow-symbols/", response_model=list[WorkflowSymbol])
    def list_symbols(enabled_only: bool = True) -> list[WorkflowSymbol]:
        return store.list_workflow_symbols(enabled_only=enabled_only)

    @api.post("/api/workflow-symbols/", response_model=WorkflowSymbol, status_code=status.HTTP_201_CREATED)
    def add_symbol(body: SymbolCreate) -> WorkflowSymbol:
        return store.add_symbol(body.symbol, priority=body.priority, enabled=body.enabled)

    @api.post("/api/workflow-symbols/{symbol}/links/", response_model=WorkflowLink, status_code=status.HTTP_201_CREATED, responses=_INVALID)
    def add_link(symbol: str, body: LinkCreate) -> WorkflowLink:
        return store.add_link(symbol, body.dag_id, config=body.config, active=body.is_active, notes=body.notes)

    @api.patch("/api/workflow-symbols/{symbol}/", response_model=WorkflowSymbol)
    def update_symbol(symbol: str, body: SymbolUpdate) -> WorkflowSymbol:
        """Enables/disables the symbol or changes its priority; fields left out stay as they are."""
        return store.update_symbol(symbol, body)

    @api.delete("/api/workflow-symbols/{symbol}/", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
    def remove_symbol(symbol: str) -> None:
        """Deletes the symbol and its links; its artifacts and their revisions stay."""
        store.remove_symbol(symbol)

    @api.patch("/api/workflow-symbols/{symbol}/links/{dag_id}/", response_model=WorkflowLink, responses=_INVALID)
    def update_link(symbol: str, dag_id: str, body: LinkUpdate) -> WorkflowLink:
        """Activates/deactivates the link or replaces its config (validated like a new link's) or notes (null clears them)."""
        return store.update_link(symbol, dag_id, body)

    @api.delete("/api/workflow-symbols/{symbol}/links/{dag_id}/", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
    def remove_link(symbol: str, dag_id: str) -> None:
        """Deletes the link (for good: deactivate it instead to keep its config)."""
        store.remove_link(symbol, dag_id)

    @api.post("/api/artifacts/", response_model=Artifact, status_code=status.HTTP_201_CREATED, responses={**_INVALID, **_GRADED})
    def save_artifact(body: ArtifactCreate, response: Response) -> Artifact:
        """201 when created; 200 when the artifact existed (its old content, if different, became a revision);
        409 for a score of a signal another run has graded."""
        artifact, created = store.write_artifact(body)
        if not created:
            response.status_code = status.HTTP_200_OK
        return artifact

    @api.get("/api/artifacts/", response_model=list[Artifact])
    def list_artifacts(
        dag_id: str | None = None, dag_run_id: str | None = None, symbol: str | None = None, artifact_type: str | None = None
    ) -> list[Artifact]:
        return store.list_artifacts(dag_id=dag_id, dag_run_id=dag_run_id, symbol=symbol, artifact_type=artifact_type)

    @api.get("/api/artifacts/{artifact_id}/", response_model=Artifact)
    def get_artifact(artifact_id: int) -> Artifact:
        return store.get_artifact(artifact_id)

    @api.patch("/api/artifacts/{artifact_id}/", response_model=Artifact)
    def set_lineage(artifact_id: int, body: LineageUpdate) -> Artifact:
        """Sets the MLflow lineage; a different lineage already set becomes a revision."""
        return store.set_lineage(artifact_id, body.mlflow_run_id, body.mlflow_experiment_id)

    @api.get("/api/artifacts/{artifact_id}/revisions/", response_model=list[ArtifactRevision])
    def list_revisions(artifact_id: int) -> list[ArtifactRevision]:
        """The replaced versions of the artifact, oldest first (the current one is the artifact itself)."""
        return store.list_revisions(artifact_id)

    app.include_router(api)
    app.add_middleware(RequestGuard, token=token, max_body_bytes=max_body_bytes)
    return app


def _store_error_response(request: Request, exc: Exception) -> JSONResponse:
    """A store error as its HTTP status (404 for an unknown symbol, link or artifact; else its own, 400 by default)."""
    code = status.HTTP_404_NOT_FOUND if isinstance(exc, NotFoundError) else getattr(exc, "status", None) or status.HTTP_400_BAD_REQUEST
    return JSONResponse({"detail": str(exc)}, status_code=code)
