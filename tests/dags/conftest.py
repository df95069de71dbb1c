"""An embedded Airflow for these tests: SQLite metadata in a temp dir, the project's dags folder."""

import subprocess
import sys

import pytest

from tmpipe import airflow_env


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    """Set Airflow's environment before anything imports it, then migrate its database once."""
    home = tmp_path_factory.mktemp("tmpipe")
    env = airflow_env.embedded_airflow_env(home)
    airflow_env.apply(env)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return home
