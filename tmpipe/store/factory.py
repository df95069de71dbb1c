"""Pick the artifacts store a resolved ``webui`` section asks for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from tmpipe.config.sections import WebuiConfig
from tmpipe.errors import StoreError
from tmpipe.home import tmpipe_home
from tmpipe.store.base import ArtifactStore


def embedded_store_path(home: Path | None = None) -> Path:
    return (home or tmpipe_home()) / "webui" / "webui.db"


def open_store(
    webui: WebuiConfig,
    *,
    connection_lookup: Callable[[str], tuple[str | None, str | None]] | None = None,
) -> ArtifactStore:
    """Embedded SQLite by default; the HTTP client for ``backend: http``.

    ``connection_lookup(conn_id) -> (base_url, token)`` lets the Airflow operators read an
    Airflow connection without this module importing Airflow.
    """
    if webui.backend == "embedded":
        from tmpipe.store.sqlite import SqliteArtifactStore

        return SqliteArtifactStore(embedded_store_path())
    from tmpipe.store.http import HttpArtifactStore

    base_url, token = webui.base_url, None
    if webui.conn_id:
        if connection_lookup is None:
            raise StoreError(f"webui.conn_id {webui.conn_id!r} needs Airflow; set webui.base_url instead")
        conn_url, token = connection_lookup(webui.conn_id)
        base_url = base_url or conn_url
    if webui.token_env:
        token = os.environ.get(webui.token_env) or token
    if not base_url:
        raise StoreError("webui.backend is http but neither webui.base_url nor webui.conn_id is set")
    return HttpArtifactStore(base_url, token=token, timeout_seconds=webui.timeout_seconds, retries=webui.retries)
