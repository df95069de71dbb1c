"""The tmpipe-side checks: spec, TMPIPE_HOME, MLflow, WebUI, LLM endpoint.

Each check contacts only what the resolved config points at, with a short timeout, and every
detail it returns has URL credentials masked: the rows are printed on shared terminals and CI logs.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tmpipe.doctor.check import FAIL, OK, WARN, Check
from tmpipe.redaction import redact_url_credentials

if TYPE_CHECKING:
    from tmpipe.config.sections import MlflowConfig, ReviewConfig, StageConfig, WebuiConfig

def run_checks(spec_path: Path | None, timeout: float) -> list[Check]:
    """Every check, in the order an operator would fix them; Airflow's last."""
    from tmpipe.doctor.airflow_checks import airflow_checks

    spec_check, shared = _spec(spec_path)
    checks = [spec_check, _home()]
    if shared is None:
        checks += [Check(name, WARN, "not checked: the spec did not load", "fix the spec first") for name in ("mlflow", "webui", "llm")]
    else:
        checks += [_mlflow(shared.mlflow, timeout), _webui(shared.webui, timeout), _llm(shared.review, timeout)]
    return checks + airflow_checks(timeout)


def _spec(spec_path: Path | None) -> tuple[Check, StageConfig | None]:
    from tmpipe.config.resolver import resolve_shared
    from tmpipe.errors import TmpipeError
    from tmpipe.spec.loader import default_spec_path, load_spec

    env_path = os.environ.get("TMPIPE_SPEC")
    path = spec_path or (Path(env_path) if env_path else default_spec_path())
    fix = "set TMPIPE_SPEC (or --spec) to the spec's absolute path and run `tmpipe validate` on it"
    if not path.is_file():
        return Check("spec", FAIL, f"{path}: no such file", fix), None
    try:
        shared = resolve_shared(load_spec(path))
    except TmpipeError as exc:
        lines = str(exc).splitlines()
        more = f" (and {len(lines) - 1} more problems)" if len(lines) > 1 else ""
        return Check("spec", FAIL, lines[0] + more, fix), None
    return Check("spec", OK, f"{path.absolute()} is valid"), shared


def _home() -> Check:
    from tmpipe.home import tmpipe_home

    home = tmpipe_home()
    fix = f"create {home} (or set TMPIPE_HOME) and make it writable by the worker's user"
    if not home.is_dir():
        return Check("TMPIPE_HOME", FAIL, f"{home} does not exist", fix)
    if not _writable(home):
        return Check("TMPIPE_HOME", FAIL, f"{home} is not writable", fix)
    return Check("TMPIPE_HOME", OK, f"{home} is writable")


def _can_create_in(folder: Path) -> bool:
    """``folder`` is writable, or its nearest existing ancestor is (the stores create their folders)."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    return existing is not None and existing.is_dir() and _writable(existing)


def _writable(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tmpipe-doctor-"):
            return True
    except OSError:
        return False


def _mlflow(mlflow: MlflowConfig, timeout: float) -> Check:
    from tmpipe.home import tmpipe_home
    from tmpipe.tracking.run_identity import resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(mlflow, tmpipe_home())
    shown = redact_url_credentials(uri)
    if uri.startswith(("http://", "https://")):
        fix = f"start the MLflow server at {shown} or fix mlflow.tracking_uri"
        try:
            response = httpx.get(uri.rstrip("/") + "/health", timeout=timeout)
        except httpx.HTTPError as exc:
            return Check("mlflow", FAIL, f"{shown} unreachable: {type(exc).__name__}", fix)
        if response.status_code != 200:
            return Check("mlflow", FAIL, f"{shown}/health answered {response.status_code}", fix)
        return Check("mlflow", OK, f"{shown} is up")
    db = sqlite_path(uri)
    if db is not None:
        folder = db.parent
    elif uri.startswith("file://") or "://" not in uri:
        folder = Path(uri.removeprefix("file://"))
    else:
        return Check("mlflow", WARN, f"{shown}: not checked (neither http(s), sqlite nor a local folder)")
    fix = f"create {folder} and make it writable, or point mlflow.tracking_uri at an MLflow server"
    if not _can_create_in(folder):
        return Check("mlflow", FAIL, f"local store {shown}: {folder} is not a writable folder", fix)
    return Check("mlflow", OK, f"local store {shown} is writable")


def _webui(webui: WebuiConfig, timeout: float) -> Check:
    if webui.backend == "embedded":
        return _embedded_webui()
    base_url = webui.base_url
    if not base_url:
        detail = f"backend http via Airflow connection {webui.conn_id!r}" if webui.conn_id else "backend http without base_url"
        return Check("webui", WARN if webui.conn_id else FAIL, detail + ": not checked",
                     "set webui.base_url so the doctor can reach it" if webui.conn_id else "set webui.base_url or webui.conn_id")
    shown = redact_url_credentials(base_url)
    token = os.environ.get(webui.token_env or "")
    if not token:
        return Check("webui", FAIL, f"{shown}: the token variable {webui.token_env} is not set",
                     f"export {webui.token_env} with the WebUI server's API token")
    try:
        response = httpx.get(base_url.rstrip("/") + "/api/workflow-symbols/", params={"enabled_only": "true"},
                             headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        return Check("webui", FAIL, f"{shown} unreachable: {type(exc).__name__}", f"start the WebUI server at {shown} or fix webui.base_url")
    if response.status_code in (401, 403):
        return Check("webui", FAIL, f"{shown} refused the token in {webui.token_env} ({response.status_code})",
                     f"set {webui.token_env} to the token the server was started with")
    if response.status_code != 200:
        return Check("webui", FAIL, f"{shown} answered {response.status_code}", "check the WebUI server's log")
    return Check("webui", OK, f"{shown} accepted the token in {webui.token_env}")


def _embedded_webui() -> Check:
    from tmpipe.store.factory import embedded_store_path

    path = embedded_store_path()
    fix = f"make {path.parent} writable by the worker's user, or use webui.backend http"
    if not path.exists():
        if _can_create_in(path.parent):
            return Check("webui", OK, f"embedded store {path} will be created")
        return Check("webui", FAIL, f"cannot create the embedded store {path}", fix)
    try:
        with sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return Check("webui", FAIL, f"embedded store {path}: {exc}", fix)
    return Check("webui", OK, f"embedded store {path} opens")


def _llm(review: ReviewConfig, timeout: float) -> Check:
    cfg = review.model_client
    if cfg.provider != "openai":
        return Check("llm", OK, f"provider {cfg.provider}: no endpoint")
    if cfg.airflow_conn_id and not cfg.api_key_env:
        return Check("llm", WARN, f"key from Airflow connection {cfg.airflow_conn_id!r}: not checked")
    env = cfg.api_key_env
    if not env or not os.environ.get(env):
        return Check("llm", FAIL, f"the API key variable {env} is not set", f"export {env} on every worker (never in the spec)")
    base_url = cfg.base_url or "https://api.openai.com/v1"
    shown = redact_url_credentials(base_url)
    try:
        response = httpx.get(base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {os.environ[env]}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        return Check("llm", FAIL, f"{shown} unreachable: {type(exc).__name__}", "fix review.model_client.base_url or the worker's network")
    if response.status_code in (401, 403):
        return Check("llm", FAIL, f"{shown} refused the key in {env} ({response.status_code})", f"set {env} to a valid key")
    return Check("llm", OK, f"{shown} reachable (GET /models: {response.status_code}); key from {env}")
