"""tmpipe: YAML-driven Airflow DAG factory for TradeMaster training, AutoGen review and MLflow lineage."""

import os

__version__ = "0.1.0"

# A run talks to loopback and the endpoints its operator configured, nothing else. MLflow 3 and
# dag-factory send usage telemetry to their vendors unless told not to; every process that
# imports tmpipe (the CLI, a DAG parse, a task) tells them before either is imported. An
# operator who sets either variable keeps their value.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")
