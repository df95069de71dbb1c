"""Test-wide settings: telemetry off, a private TMPIPE_HOME, the project root as cwd, no environment leaks."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# threadpoolctl sets KMP_DUPLICATE_LIB_OK once, at its import; imported here, before any test, that
# is not the leak of whichever test first trains a model.
import threadpoolctl  # noqa: F401
from tmpipe import airflow_env

ROOT = Path(__file__).resolve().parent.parent
os.environ["AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY"] = "False"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Off from the start: MLflow's telemetry calls a host off loopback, and its client exports then
# unsets _MLFLOW_TELEMETRY_SESSION_ID when a later call switches it off, mid-test.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# torch (the torch extra's tests) exports its compile-cache directory, as an absolute path, the
# first time autograd asks for it; set here, that export changes nothing mid-test.
os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.abspath(
    os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "tmpipe-tests-torchinductor"))


@pytest.fixture(autouse=True)
def _environ_unchanged():
    """Fails a test that leaves os.environ changed, naming the keys, and puts the environment back.

    A leak outlives its test and breaks later tests of other files in the same worker (a
    ``monkeypatch.delenv`` of an absent key records nothing to undo, so a setenv by the code under
    test stays). Fixtures of a wider scope are set up before this one and torn down after, so what
    they set on purpose is in the snapshot; this fixture requests nothing and its name sorts first
    among the autouse ones, so every other function fixture (``monkeypatch`` too) is undone before
    the check. Values are not shown: they may be secrets. PYTEST_CURRENT_TEST is pytest's own.
    """
    before = dict(os.environ)
    yield
    after = dict(os.environ)
    if "PYTEST_CURRENT_TEST" in before:
        after["PYTEST_CURRENT_TEST"] = before["PYTEST_CURRENT_TEST"]
    if after == before:
        return
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(key for key in before.keys() & after.keys() if before[key] != after[key])
    for key in added:
        del os.environ[key]
    os.environ.update({key: before[key] for key in removed + changed})
    leaks = ", ".join(f"{what}: {' '.join(keys)}" for what, keys in
                      (("added", added), ("removed", removed), ("changed", changed)) if keys)
    pytest.fail(f"the test left os.environ changed (restored now); {leaks}", pytrace=False)


@pytest.fixture(autouse=True)
def _project_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.fixture
def dag_test_environ():
    """For tests that run ``dag.test()``: Airflow's task runner exports each task's AIRFLOW_CTX_*
    variables into the process it runs in (meant for the task's own process); put back after the test."""
    before = {key: value for key, value in os.environ.items() if key.startswith("AIRFLOW_CTX_")}
    yield
    for key in [key for key in os.environ if key.startswith("AIRFLOW_CTX_")]:
        del os.environ[key]
    os.environ.update(before)


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
def airflow_home(airflow_settings, migrated_airflow_database):
    """The same Airflow with a copy of the session's migrated SQLite metadata database (the one
    `tmpipe run` homes copy: one migration per test worker, not two), for `dag.test()` runs."""
    shutil.copyfile(migrated_airflow_database / "airflow" / "airflow.db", airflow_settings / "airflow" / "airflow.db")
    return airflow_settings


@pytest.fixture(scope="session")
def migrated_airflow_database(tmp_path_factory) -> Path:
    """A TMPIPE_HOME whose Airflow database is migrated once per session (seconds).

    Migrated by `tmpipe run`'s own step (`runner.prepare_home`, in a child process as `tmpipe run`
    does it), which also writes the stamp that tells a later run it has nothing to migrate.
    """
    home = tmp_path_factory.mktemp("migrated_home")
    prepare = "import sys; from pathlib import Path; from tmpipe.runner import prepare_home; prepare_home(Path(sys.argv[1]), Path('spec.yaml'))"
    subprocess.run([sys.executable, "-c", prepare, str(home)], check=True, capture_output=True, timeout=600)
    from tmpipe.runner import MIGRATED_STAMP

    assert (home / "airflow" / MIGRATED_STAMP).is_file()
    return home


@pytest.fixture(scope="session")
def migrated_databases(migrated_airflow_database) -> Path:
    """The same TMPIPE_HOME with its MLflow database created too (seconds more)."""
    from tmpipe.tracking import client_for, embedded_tracking_uri

    client_for(embedded_tracking_uri(migrated_airflow_database))
    return migrated_airflow_database


@pytest.fixture(scope="session")
def migrated_home_copy(migrated_databases):
    """Makes a directory a fresh TMPIPE_HOME for `tmpipe run` holding copies of the migrated
    databases and the migration stamp, so a run finds its Airflow and MLflow schemas current
    instead of creating them (or starting `airflow db migrate` to learn that); nothing else is shared."""
    from tmpipe.runner import MIGRATED_STAMP

    def copy(home: Path) -> Path:
        for database in ("airflow/airflow.db", f"airflow/{MIGRATED_STAMP}", "mlflow/mlflow.db"):
            (home / database).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(migrated_databases / database, home / database)
        return home

    return copy


@pytest.fixture
def home(tmp_path, migrated_home_copy) -> Path:
    """A fresh TMPIPE_HOME with the session's migrated databases (migrated_home_copy)."""
    return migrated_home_copy(tmp_path / "home")


# --dist loadfile hands each worker whole test files, by default the files with the most tests
# first; the files that start Airflow deployments or run DAGs hold few tests but most of the
# suite's time, so they came last and one worker ran the long tail alone. Longest first instead
# (seconds of one file on one worker, measured on a loaded 2-core machine; unlisted files count
# a second a test), so the two workers end together.
FILE_SECONDS = {
    "tests/pipeline/test_distributed_run.py": 600,
    "tests/pipeline/test_production_run.py": 290,
    "tests/pipeline/test_local_run.py": 400,
    "tests/pipeline/test_local_run_models.py": 300,
    "tests/review/test_replay_run.py": 250,
    "tests/pipeline/test_scheduler_run.py": 145,
    "tests/signals/test_dag_step.py": 140,
    "tests/pipeline/test_scratch.py": 85,
    "tests/tracking/test_tracking_runs.py": 60,
    "tests/tracking/test_tracking_production.py": 75,
    "tests/pipeline/test_stages.py": 75,
    "tests/pipeline/test_prepare_home.py": 40,
    "tests/doctor/test_doctor.py": 100,
    "tests/dags/test_run_state.py": 60,
    "tests/dags/test_factory.py": 55,
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LongestFileFirst(LoadFileScheduling):
        def _assign_work_unit(self, node):
            def seconds(scope: str) -> float:
                return FILE_SECONDS.get(scope, len(self.workqueue[scope]))

            for scope in sorted(self.workqueue, key=seconds, reverse=True):
                self.workqueue.move_to_end(scope)
            super()._assign_work_unit(node)

    return LongestFileFirst(config, log)
