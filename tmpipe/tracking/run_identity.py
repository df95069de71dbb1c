"""Identity of one MLflow run per (DAG run, symbol), and URI helpers.

Pure module (no mlflow import): the operators build a ``TrackingContext`` from the task
instance and pass ids around, because every mapped Airflow task is its own process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from tmpipe.config.sections import MlflowConfig
from tmpipe.errors import TrackingError
from tmpipe.redaction import without_url_credentials

TAG_DAG_ID = "airflow.dag_id"
TAG_DAG_RUN_ID = "airflow.dag_run_id"
TAG_MAP_INDEX = "airflow.map_index"
TAG_TRY_NUMBER = "airflow.try_number"
TAG_TASK_URL = "airflow.task_url"
TAG_SYMBOL = "symbol"
TAG_MODE = "mode"
TAG_ENGINE = "engine"
TAG_SPEC_SHA256 = "spec_sha256"
TAG_VERSION = "tmpipe.version"
TAG_DATA_SHA256 = "data.sha256"
TAG_TRACE_HEAD = "tmpipe.trace_head_sha256"  # the review trace's chain head, a copy outside the trace

# Airflow run ids carry the logical date after "__" (manual__2024-05-01T12:00:00+00:00).
_RUN_ID_TIMESTAMP = re.compile(r"__(\d{4}-\d{2}-\d{2}T[0-9:.]+)")


@dataclass(frozen=True)
class TrackingContext:
    """Everything that identifies and labels the MLflow run of one symbol in one DAG run."""

    tracking_uri: str
    experiment: str
    dag_id: str
    dag_run_id: str
    symbol: str
    mode: str
    engine_backend: str
    spec_sha256: str
    project_version: str
    map_index: int = -1
    try_number: int = 1
    task_url: str | None = None
    run_timestamp: datetime | str | None = None
    """The DAG run's logical date (or run_after); parsed from dag_run_id when absent."""

    def identity_tags(self) -> dict[str, str]:
        """The three tags that find this run again on a retry."""
        return {TAG_DAG_ID: self.dag_id, TAG_DAG_RUN_ID: self.dag_run_id, TAG_SYMBOL: self.symbol}

    def all_tags(self) -> dict[str, str]:
        tags = {
            **self.identity_tags(),
            TAG_MODE: self.mode,
            TAG_ENGINE: self.engine_backend,
            TAG_SPEC_SHA256: self.spec_sha256,
            TAG_VERSION: self.project_version,
            TAG_MAP_INDEX: str(self.map_index),
            TAG_TRY_NUMBER: str(self.try_number),
        }
        if self.task_url:
            tags[TAG_TASK_URL] = self.task_url
        return tags

    def run_name(self) -> str:
        """``SYMBOL-<DAG run timestamp>``, readable in the MLflow UI run list."""
        stamp = self.run_timestamp
        if isinstance(stamp, datetime):
            stamp = stamp.strftime("%Y%m%dT%H%M%S")
        elif stamp is None:
            match = _RUN_ID_TIMESTAMP.search(self.dag_run_id)
            stamp = re.sub(r"[^0-9T]", "", match.group(1))[:15] if match else self.dag_run_id
        return f"{self.symbol}-{stamp}"


@dataclass(frozen=True)
class RunRef:
    """Small, XCom-friendly reference to an MLflow run."""

    run_id: str
    experiment_id: str
    run_name: str
    artifact_uri: str


def quote_filter_value(value: str) -> str:
    """Quote a value for an MLflow filter string; MLflow has no escape character."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise TrackingError(f"cannot search MLflow for a value containing both quote kinds: {value!r}")


def tags_filter(tags: dict[str, str]) -> str:
    """``tags.`k` = 'v' AND ...`` with back-quoted keys (ours contain dots)."""
    return " AND ".join(f"tags.`{key}` = {quote_filter_value(val)}" for key, val in tags.items())


def embedded_tracking_uri(tmpipe_home: str | Path) -> str:
    """SQLite store under ``<home>/mlflow``; creates the directory SQLite needs."""
    mlflow_dir = Path(tmpipe_home).expanduser().resolve() / "mlflow"
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{mlflow_dir / 'mlflow.db'}"


def resolve_tracking_uri(mlflow_config: MlflowConfig, tmpipe_home: str | Path) -> str:
    """``mlflow.tracking_uri`` from the resolved config, or the embedded store when null."""
    return mlflow_config.tracking_uri or embedded_tracking_uri(tmpipe_home)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    prefix = "sqlite:///"  # sqlite:///relative.db or sqlite:////absolute.db
    if not tracking_uri.startswith(prefix):
        return None
    return Path(unquote(tracking_uri[len(prefix) :].split("?", 1)[0])).resolve()


def default_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """For SQLite stores: ``<db dir>/artifacts/<experiment>``; None lets the server decide.

    Without this MLflow would put artifacts in ``./mlruns`` of whatever the worker's CWD is.
    """
    db = sqlite_path(tracking_uri)
    if db is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment).strip("_") or "default"
    return str(db.parent / "artifacts" / slug)


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """Link to the run in the MLflow UI for http(s) tracking servers, None for local stores.

    The link lands in XCom, signals and the WebUI, so credentials in the URI are left out.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    parts = urlsplit(without_url_credentials(tracking_uri))
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
