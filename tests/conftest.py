"""Test-wide settings: telemetry off, a private TMPIPE_HOME, and the project root as cwd."""

import os
from pathlib import Path

import pytest

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
