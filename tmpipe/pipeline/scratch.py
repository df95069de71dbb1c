"""Per-run scratch under TMPIPE_HOME/work/<dag_id>/<run>/<symbol>: removed after success, kept on failure.

Nothing a later stage reads lives only here: results, bundles, signals and traces are read
back from MLflow. A symbol's scratch is marked done when its last stage succeeds; only marked
scratch is ever removed, so a failed symbol's files stay for debugging and a symbol still
running in another DAG run is never touched.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

DONE_MARKER = ".tmpipe-done"


def start(symbol_dir: Path) -> None:
    """A stage is about to use this scratch (again, on a retry or re-run): it is not done."""
    (symbol_dir / DONE_MARKER).unlink(missing_ok=True)


def finish(symbol_dir: Path, keep_runs: int) -> None:
    """The symbol's last stage succeeded: mark its scratch done, then keep only the ``keep_runs``
    most recent runs' done scratch of this DAG (0: none, so this one goes at once)."""
    try:
        (symbol_dir / DONE_MARKER).touch()
        prune(symbol_dir.parent.parent, keep_runs, current_run=symbol_dir.parent)
    except OSError as exc:  # disk housekeeping must not fail a symbol that succeeded
        log.warning("%s: could not clean scratch: %s", symbol_dir, exc)


def prune(dag_dir: Path, keep_runs: int, *, current_run: Path | None = None) -> None:
    """Remove done scratch of all but the ``keep_runs`` runs whose scratch was done most recently."""
    done: dict[Path, float] = {}
    for marker in dag_dir.glob(f"*/*/{DONE_MARKER}"):
        run_dir = marker.parent.parent
        done[run_dir] = max(done.get(run_dir, 0.0), marker.stat().st_mtime)
    newest = sorted(done, key=done.__getitem__, reverse=True)
    for run_dir in newest[keep_runs:]:
        for marker in run_dir.glob(f"*/{DONE_MARKER}"):
            shutil.rmtree(marker.parent, ignore_errors=True)
    for run_dir in dag_dir.iterdir():  # empty ones, e.g. left by a run whose scratch went at once
        if run_dir != current_run and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
