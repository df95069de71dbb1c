"""Environment for the embedded Airflow of ``tmpipe run`` and the tests (before importing Airflow)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DAGS_FOLDER = Path(__file__).resolve().parent.parent / "dags"


def embedded_airflow_env(home: Path, dags_folder: Path | None = None) -> dict[str, str]:
    """Settings for an in-process Airflow with SQLite metadata under ``home``."""
    airflow_home = home / "airflow"
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or installed_dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        # `tmpipe run`'s executor: its tasks, one at a time, in task processes forked from it
        "AIRFLOW__CORE__EXECUTOR": "tmpipe.task_processes.TaskProcessExecutor",
        # signs the token Airflow makes for each task it hands to an executor; the in-process
        # Execution API does not check it. Random per process, long enough for HS512.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "TMPIPE_HOME": str(home),
    }


def installed_dags_folder() -> Path:
    """The project's dags/ folder (a checkout or an editable install)."""
    if not DAGS_FOLDER.is_dir():
        raise FileNotFoundError(f"no dags folder at {DAGS_FOLDER}; run tmpipe from a checkout of the project")
    return DAGS_FOLDER


def apply(env: dict[str, str]) -> None:
    os.environ.update(env)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
