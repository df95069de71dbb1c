"""The Airflow-side checks: version, executor, metadata driver, Celery, heartbeats, telemetry.

``airflow.configuration`` is imported here, inside the checks, so the rest of tmpipe stays
importable without Airflow configured.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit

from tmpipe.doctor.check import FAIL, OK, WARN, Check
from tmpipe.redaction import redact_url_credentials

PSYCOPG2_FIX = "SQLAlchemy 2.1 maps postgresql:// to psycopg 3; tmpipe installs psycopg2: write postgresql+psycopg2://"


def airflow_checks(timeout: float) -> list[Check]:
    # Read the configuration without settings.initialize(): that would open the metadata
    # database's engine and die on the very driver problem the checks below explain.
    if "airflow" not in sys.modules:
        os.environ.setdefault("_AIRFLOW__AS_LIBRARY", "1")
    try:
        import airflow
        from airflow.configuration import conf
    except Exception as exc:
        return [Check("airflow", FAIL, f"cannot load Airflow's configuration: {type(exc).__name__}: {exc}",
                      "fix the Airflow install or airflow.cfg (AIRFLOW_HOME)")]
    executor = conf.get("core", "executor")
    checks = [Check("airflow", OK, f"Airflow {airflow.__version__}, executor {executor}"),
              _metadata_db(conf.get("database", "sql_alchemy_conn"))]
    if "CeleryExecutor" in executor:
        checks += [_result_backend(conf.get("celery", "result_backend", fallback="")),
                   _broker(conf.get("celery", "broker_url", fallback=""), timeout)]
    return checks + [_heartbeats(conf), _telemetry(conf)]


def _metadata_db(url: str) -> Check:
    scheme = urlsplit(url).scheme
    shown = redact_url_credentials(url)
    if scheme.startswith("sqlite"):
        return Check("airflow metadata db", WARN, f"{shown}: SQLite, one process only",
                     "use PostgreSQL (postgresql+psycopg2://) for a scheduler with workers")
    if scheme.split("+")[0] in ("postgres", "postgresql") and scheme != "postgresql+psycopg2":
        return Check("airflow metadata db", FAIL, f"{shown}: driver is not psycopg2", PSYCOPG2_FIX + " in database.sql_alchemy_conn")
    return Check("airflow metadata db", OK, shown)


def _result_backend(url: str) -> Check:
    shown = redact_url_credentials(url) or "(unset)"
    scheme = urlsplit(url).scheme
    if scheme.split("+")[:2] in (["db", "postgres"], ["db", "postgresql"]) and scheme != "db+postgresql+psycopg2":
        return Check("celery result backend", FAIL, f"{shown}: driver is not psycopg2", PSYCOPG2_FIX.replace("postgresql+", "db+postgresql+") + " in celery.result_backend")
    if not url:
        return Check("celery result backend", FAIL, shown, "set celery.result_backend, e.g. db+postgresql+psycopg2://...")
    return Check("celery result backend", OK, shown)


def _broker(url: str, timeout: float) -> Check:
    """A TCP connection to the broker's host and port: enough to tell down from up without a Celery app."""
    shown = redact_url_credentials(url) or "(unset)"
    parts = urlsplit(url)
    default_ports = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}
    if not parts.hostname or parts.scheme not in default_ports:
        return Check("celery broker", WARN, f"{shown}: not checked (only redis and amqp URLs are)")
    try:
        with socket.create_connection((parts.hostname, parts.port or default_ports[parts.scheme]), timeout=timeout):
            pass
    except OSError as exc:
        return Check("celery broker", FAIL, f"{shown} unreachable: {exc.strerror or exc}", "start the broker or fix celery.broker_url")
    return Check("celery broker", OK, f"{shown} accepts connections")


def _heartbeats(conf) -> Check:
    """How long a worker that dies mid-task holds its symbol: the scheduler notices after the timeout."""
    scheduler = conf.getint("scheduler", "scheduler_heartbeat_sec")
    timeout = conf.getint("scheduler", "task_instance_heartbeat_timeout")
    interval = conf.getint("scheduler", "task_instance_heartbeat_timeout_detection_interval")
    detail = (f"scheduler heartbeat {scheduler}s, task heartbeat timeout {timeout}s (checked every {interval}s): "
              f"a task on a worker that dies is failed or retried about {timeout + interval}s later")
    if timeout > 900:
        return Check("airflow heartbeats", WARN, detail, "lower scheduler.task_instance_heartbeat_timeout to recover sooner")
    return Check("airflow heartbeats", OK, detail)


def _telemetry(conf) -> Check:
    if conf.getboolean("dag_factory", "enable_telemetry", fallback=True):
        return Check("dag-factory telemetry", WARN, "on: parsing the DAG sends usage data to dag-factory's vendor",
                     "set AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY=False")
    return Check("dag-factory telemetry", OK, "off")
