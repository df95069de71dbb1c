"""The dags file names every Airflow module its parse imports, so the DAG processor pre-imports them.

Airflow's processor imports the ``airflow.*`` modules a DAG file names once in its long-lived
parent, then forks a parser per parse; any other Airflow module (dag-factory pulls dozens) is
imported again on every parse. benchmarks/parse.py measures the difference.
"""

import subprocess
import sys
import textwrap

from tmpipe import airflow_env

DAG_FILE = airflow_env.installed_dags_folder() / "trademaster_autogen_pipeline_workflow.py"


def test_parsing_the_dags_file_imports_no_airflow_module_it_does_not_name(airflow_home):
    script = textwrap.dedent(
        f"""
        import importlib, runpy, sys
        import airflow.dag_processing.processor
        from airflow.utils.file import iter_airflow_imports
        for name in iter_airflow_imports({str(DAG_FILE)!r}):
            importlib.import_module(name)
        before = set(sys.modules)
        runpy.run_path({str(DAG_FILE)!r})
        print(sorted(m for m in set(sys.modules) - before if m.startswith("airflow")))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
