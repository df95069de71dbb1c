"""``tmpipe doctor``: check a worker's deployment (spec, home, MLflow, WebUI, LLM, Airflow) in one table."""

from tmpipe.doctor.check import Check
from tmpipe.doctor.checks import run_checks

__all__ = ["Check", "run_checks"]
