"""TMPIPE_HOME: where the embedded defaults keep Airflow, MLflow and WebUI state."""

from __future__ import annotations

import os
from pathlib import Path


def tmpipe_home() -> Path:
    return Path(os.environ.get("TMPIPE_HOME", ".tmpipe")).absolute()
