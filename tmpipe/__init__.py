"""tmpipe: YAML-driven Airflow DAG factory for TradeMaster training, AutoGen review and MLflow lineage."""

__version__ = "0.1.0"
