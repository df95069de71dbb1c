"""Airflow DAG trademaster_autogen_pipeline_workflow, generated from its YAML spec by tmpipe.

The spec path comes from TMPIPE_SPEC, else dag_specs/ next to this dags folder.
"""

import os
from pathlib import Path

from tmpipe.generator import build_dags

SPEC = os.environ.get("TMPIPE_SPEC") or Path(__file__).parent.parent / "dag_specs" / "trademaster_autogen_pipeline_workflow.yaml"

build_dags(globals(), SPEC)
