"""Test-wide settings: telemetry off, a private TMPIPE_HOME, and the project root as cwd."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tmpipe import airflow_env

ROOT = Path(__file__).resolve().parent.parent
os.environ["AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY"] = "False"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(autouse=True)
def _project_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.fixture
def tmpipe_home(tmp_path, monkeypatch):
    home = tmp_path / "tmpipe_home"
    monkeypatch.setenv("TMPIPE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def airflow_settings(tmp_path_factory):
    """One embedded Airflow environment for the session, set before anything imports Airflow
    (Airflow reads it once, at import). Enough for operators run as units."""
    home = tmp_path_factory.mktemp("tmpipe")
    airflow_env.apply(airflow_env.embedded_airflow_env(home))
    return home


@pytest.fixture(scope="session")
def airflow_home(airflow_settings):
    """The same Airflow with its SQLite metadata database migrated once, for `dag.test()` runs."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return airflow_settings
