"""The `celery` extra's pins hold together in this environment (`make test` installs `.[test,celery]`)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_the_installed_celery_extra_satisfies_its_pins():
    pins = [Requirement(line) for line in tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["celery"]]
    unmet = {pin.name: version(pin.name) for pin in pins if version(pin.name) not in pin.specifier}
    assert unmet == {}, f"installed versions outside the extra's pins: {unmet}"


def test_the_celery_executor_and_the_psycopg2_result_backend_import():
    """providers-celery 3.26 cannot import Celery 5.7 (celery.backends.database.retry is gone)."""
    from airflow.providers.celery.executors.celery_executor import CeleryExecutor
    from celery.backends.database import DatabaseBackend
    from sqlalchemy.engine import make_url

    assert CeleryExecutor.__name__ == "CeleryExecutor" and DatabaseBackend is not None
    assert make_url("postgresql+psycopg2://u@127.0.0.1/db").get_dialect().import_dbapi().__name__ == "psycopg2"
