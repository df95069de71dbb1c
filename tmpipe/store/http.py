"""HTTP client for the WebUI backend: timeouts, retries with backoff on 5xx/timeouts, clear 4xx errors."""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from tmpipe.abort import ensure_not_aborted
from tmpipe.errors import NotFoundError, StoreError
from tmpipe.redaction import redact_url_credentials
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

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and exc.retryable


class HttpArtifactStore:
    """Talks to ``base_url`` (e.g. ``http://127.0.0.1:8000``); the token is sent as a bearer."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_seconds: float = 10.0,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_seconds, transport=transport)
        self._retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(retries + 1),
            wait=wait_exponential(multiplier=backoff_seconds, max=10),
            reraise=True,
        )

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._retrying(self._send, method, path, **kwargs)

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        where = f"{method} {redact_url_credentials(self.base_url)}{path}"
        ensure_not_aborted(where)
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise StoreError(f"{where}: timed out", retryable=True) from exc
        except httpx.TransportError as exc:
            raise StoreError(redact_url_credentials(f"{where}: {exc.__class__.__name__}: {exc}"), retryable=True) from exc
        if response.status_code == 404:
            raise NotFoundError(f"{where}: 404 not found: {_detail(response)}")
        if response.status_code >= 400:
            raise StoreError(
                f"{where}: HTTP {response.status_code}: {_detail(response)}",
                status=response.status_code,
                retryable=response.status_code in RETRYABLE_STATUS,
            )
        return response.json() if response.content else None

    def list_workflow_symbols(self, enabled_only: bool = True) -> list[WorkflowSymbol]:
        data = self._request("GET", "/api/workflow-symbols/", params={"enabled_only": str(enabled_only).lower()})
        return [WorkflowSymbol.model_validate(item) for item in data]

    def add_symbol(self, symbol: str, *, priority: int = 100, enabled: bool = True) -> WorkflowSymbol:
        body = SymbolCreate(symbol=symbol, priority=priority, enabled=enabled).model_dump()
        return WorkflowSymbol.model_validate(self._request("POST", "/api/workflow-symbols/", json=body))

    def add_link(
        self, symbol: str, dag_id: str, *, config: dict[str, Any] | None = None, active: bool = True, notes: str | None = None
    ) -> WorkflowLink:
        body = LinkCreate(dag_id=dag_id, config=config or {}, is_active=active, notes=notes).model_dump()
        return WorkflowLink.model_validate(self._request("POST", f"/api/workflow-symbols/{symbol}/links/", json=body))

    def update_symbol(self, symbol: str, changes: SymbolUpdate) -> WorkflowSymbol:
        body = changes.model_dump(exclude_unset=True)
        return WorkflowSymbol.model_validate(self._request("PATCH", f"/api/workflow-symbols/{symbol}/", json=body))

    def remove_symbol(self, symbol: str) -> None:
        self._request("DELETE", f"/api/workflow-symbols/{symbol}/")

    def update_link(self, symbol: str, dag_id: str, changes: LinkUpdate) -> WorkflowLink:
        body = changes.model_dump(exclude_unset=True)
        return WorkflowLink.model_validate(self._request("PATCH", f"/api/workflow-symbols/{symbol}/links/{dag_id}/", json=body))

    def remove_link(self, symbol: str, dag_id: str) -> None:
        self._request("DELETE", f"/api/workflow-symbols/{symbol}/links/{dag_id}/")

    def save_artifact(self, artifact: ArtifactCreate) -> Artifact:
        body = artifact.model_dump(mode="json")
        if body["graded_signal_id"] is None:  # only a signal_score names one; other writes look as they always did
            del body["graded_signal_id"]
        return Artifact.model_validate(self._request("POST", "/api/artifacts/", json=body))

    def set_lineage(self, artifact_id: int, mlflow_run_id: str, mlflow_experiment_id: str) -> Artifact:
        body = LineageUpdate(mlflow_run_id=mlflow_run_id, mlflow_experiment_id=mlflow_experiment_id).model_dump()
        return Artifact.model_validate(self._request("PATCH", f"/api/artifacts/{artifact_id}/", json=body))

    def get_artifact(self, artifact_id: int) -> Artifact:
        return Artifact.model_validate(self._request("GET", f"/api/artifacts/{artifact_id}/"))

    def list_revisions(self, artifact_id: int) -> list[ArtifactRevision]:
        data = self._request("GET", f"/api/artifacts/{artifact_id}/revisions/")
        return [ArtifactRevision.model_validate(item) for item in data]

    def list_artifacts(
        self,
        *,
        dag_id: str | None = None,
        dag_run_id: str | None = None,
        symbol: str | None = None,
        artifact_type: str | None = None,
    ) -> list[Artifact]:
        params = {"dag_id": dag_id, "dag_run_id": dag_run_id, "symbol": symbol, "artifact_type": artifact_type}
        data = self._request("GET", "/api/artifacts/", params={k: v for k, v in params.items() if v is not None})
        return [Artifact.model_validate(item) for item in data]


def _detail(response: httpx.Response, limit: int = 1000) -> str:
    """The server's explanation; FastAPI's field errors as ``body.symbol: message``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:limit]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list) and all(isinstance(item, dict) and "msg" in item for item in detail):
        detail = "; ".join(f"{'.'.join(str(part) for part in item.get('loc', []))}: {item['msg']}" for item in detail)
    return str(detail)[:limit]
