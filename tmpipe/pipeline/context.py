"""What a stage knows about the DAG run it belongs to, without importing Airflow."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from tmpipe.errors import SpecError
from tmpipe.home import tmpipe_home
from tmpipe.pipeline import scratch
from tmpipe.spec.loader import load_spec
from tmpipe.spec.model import Spec
from tmpipe.spec.validation import validate_data


@dataclass(frozen=True)
class RunContext:
    dag_id: str
    dag_run_id: str
    logical_date: str | None
    conf: dict[str, Any]
    spec_path: str
    map_index: int = -1
    try_number: int = 1
    task_url: str | None = None
    # (conn_id) -> (host/base_url, password); set by operators so the core never imports Airflow.
    connection_lookup: Callable[[str], tuple[str | None, str | None]] | None = field(default=None, repr=False)

    @cached_property
    def spec(self) -> Spec:
        """The run's spec, parsed once per task however many stages of it ask."""
        return load_spec(self.spec_path)

    @property
    def mode(self) -> str:
        """dag_run.conf's mode, else the spec's default."""
        return self.conf.get("mode") or self.spec.default_mode

    def work_dir(self, symbol: str) -> Path:
        """Scratch space for one symbol of one run (data copies, bundles before upload)."""
        path = self._scratch_path(symbol)
        path.mkdir(parents=True, exist_ok=True)
        scratch.start(path)
        return path

    def finish_work(self, symbol: str) -> None:
        """The symbol's last stage succeeded: its scratch goes, within ``dag.keep_scratch_runs``."""
        path = self._scratch_path(symbol)
        if path.is_dir():
            scratch.finish(path, self.spec.dag.keep_scratch_runs)

    def _scratch_path(self, symbol: str) -> Path:
        safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", self.dag_run_id)
        return tmpipe_home() / "work" / self.dag_id / safe_run / symbol


def check_conf(conf: dict[str, Any]) -> dict[str, Any]:
    """dag_run.conf validated against its schema; a bad mode names the valid ones."""
    problems = validate_data(conf, "urn:tmpipe:dag_run_conf", file="dag_run.conf")
    if problems:
        raise SpecError(problems)
    return conf
