"""Local DAG runs through `tmpipe run` in a fresh process, on a small synthetic spec."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


DAG_ID = "trademaster_autogen_pipeline_workflow"


def spec_text(extra_defaults: dict | None = None, symbols: dict | None = None) -> str:
    """The small synthetic spec the pipeline tests run; `extra_defaults` adds sections under `defaults:`."""
    spec = {
        "schema_version": 1,
        "dag": {"dag_id": DAG_ID, "retries": 0},
        "demo_symbols": ["AAA", "BBB"],
        "defaults": {
            "data": {"source": "demo", "demo_series": "synthetic", "synthetic_rows": 260, "lookback": 5},
            # One BLAS thread, as in the engine tests: tests run two at a time on 2 cores (make test).
            "trademaster": {"epochs": 2, "hidden_size": 16, "batch_size": 32, "torch_threads": 1},
            # the test spec relaxes the gate: 260 synthetic bars and 2 epochs show no skill
            "mlflow": {"promotion": {"require_beat_buy_and_hold": False, "max_drawdown": 1.0,
                                     "require_skill": False, "beat_baselines": []}},
            **(extra_defaults or {}),
        },
    }
    if symbols:
        spec["symbols"] = symbols
    return yaml.safe_dump(spec, sort_keys=False)


def spec_file(directory: Path, **sections) -> Path:
    """`spec.yaml` in `directory`: the synthetic spec with top-level `sections` replaced (e.g. limits=...)."""
    spec = {**yaml.safe_load(spec_text()), **sections}
    path = directory / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def pipeline_spec(tmp_path):
    """The spec plus a symbol BROKEN whose CSV does not exist, so its task fails."""
    path = tmp_path / "spec.yaml"
    broken = {"data": {"source": "csv", "path": str(tmp_path / "no_such_bars.csv")}}
    path.write_text(spec_text(symbols={"BROKEN": broken}))
    return path


def run_tmpipe(home: Path, *args: str, env: dict | None = None) -> tuple[int, dict]:
    """`tmpipe run ... --json` in its own process; returns exit code and the JSON it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "tmpipe", "run", *args, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPIPE_HOME": str(home), **(env or {})},
        timeout=900,
    )
    try:  # stdout is the JSON alone: Airflow's log lines, even a failed task's, go to stderr
        return result.returncode, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"stdout is not one JSON object (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}") from None


def xcom_sizes(home: Path) -> dict[tuple[str, int, str], int]:
    """Size in bytes of every stored XCom value of the embedded Airflow."""
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        rows = db.execute("SELECT task_id, map_index, key, length(value) FROM xcom").fetchall()
    return {(task, index, key): size for task, index, key, size in rows}


def mlflow_runs(home: Path, tracking_uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = client.search_experiments()
    return client, client.search_runs([e.experiment_id for e in experiments], max_results=100)


def webui_artifacts(home: Path):
    from tmpipe.store.sqlite import SqliteArtifactStore

    return SqliteArtifactStore(home / "webui" / "webui.db").list_artifacts()


def link_pipeline_symbols(store, aaa_config: dict | None = None, aaa_notes: str | None = None) -> None:
    """AAA and BBB linked to the test DAG (AAA first by priority), plus two that must not run:
    OFF (disabled) and ELSE (linked to another DAG)."""
    store.add_symbol("AAA", priority=1)
    store.add_link("AAA", DAG_ID, config=aaa_config, notes=aaa_notes)
    store.add_symbol("BBB", priority=2)
    store.add_link("BBB", DAG_ID)
    store.add_symbol("OFF", priority=0, enabled=False)
    store.add_link("OFF", DAG_ID)
    store.add_symbol("ELSE", priority=0)
    store.add_link("ELSE", "some_other_dag")
