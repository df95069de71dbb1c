"""The core stays free of Airflow, and importing it loads none of the heavy libraries (pandas included)."""

import subprocess
import sys

CORE = [
    "tmpipe.spec.loader",
    "tmpipe.spec.catalog",
    "tmpipe.spec.schema_bundle",
    "tmpipe.spec_diff",
    "tmpipe.config.resolver",
    "tmpipe.engine",
    "tmpipe.review",
    "tmpipe.tracking",
    "tmpipe.store.http",
    "tmpipe.store.sqlite",
    "tmpipe.pipeline.stages",
    "tmpipe.signals.service",
    "tmpipe.signals.backfill",
    "tmpipe.signals.report",
    "tmpipe.doctor.checks",
    "tmpipe.doctor.airflow_checks",
    "tmpipe.cli",
]


def test_core_imports_no_airflow_torch_mlflow_autogen_or_pandas():
    script = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in CORE)
        + "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'torch', 'mlflow', 'autogen_agentchat', 'dagfactory', 'pandas'}))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
