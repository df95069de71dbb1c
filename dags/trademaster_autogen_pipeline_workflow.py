"""Airflow DAG trademaster_autogen_pipeline_workflow, generated from its YAML spec by tmpipe.

The spec path comes from TMPIPE_SPEC, else dag_specs/ next to this dags folder.
"""

import os
from pathlib import Path

# The Airflow modules that dag-factory and the symbol task group import. Airflow's DAG processor
# pre-imports the airflow.* modules a DAG file names, once, before it forks a parser per parse
# ([dag_processor] parsing_pre_import_modules); named here, they are not imported again on every
# parse (benchmarks/parse.py; tests/dags/test_parse_preimports.py keeps this list complete).
import airflow.operators.python  # noqa: F401
import airflow.providers.common.sql.sensors.sql  # noqa: F401
import airflow.providers.standard.operators.python  # noqa: F401
import airflow.providers.standard.sensors.python  # noqa: F401
import airflow.sdk.definitions.decorators.task_group  # noqa: F401
import airflow.sensors.python  # noqa: F401
import airflow.timetables.assets  # noqa: F401
import airflow.version  # noqa: F401

from tmpipe.generator import build_dags

SPEC = os.environ.get("TMPIPE_SPEC") or Path(__file__).parent.parent / "dag_specs" / "trademaster_autogen_pipeline_workflow.yaml"

build_dags(globals(), SPEC)
