"""Stop a task process whose supervisor died, before it writes anything more.

A Celery worker that is killed takes its pool process (the Airflow supervisor, which heartbeats
the task instance) with it, but not the task process the supervisor forked: that orphan would
go on training and write to MLflow and the WebUI while the scheduler already retries the task
elsewhere. :func:`watch_parent` notices the orphaning within ``interval`` seconds, sets the
process-wide abort flag that the MLflow and WebUI write paths check, appends a marker line to
``abort_log`` (the task log went through the dead supervisor) and ends the process.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

from tmpipe.errors import TmpipeError

ABORT_LOG = "logs/aborted-tasks.log"  # under TMPIPE_HOME
WATCH_INTERVAL_SECONDS = 1.0
EXIT_CODE = 70  # EX_SOFTWARE: the process was ended on purpose, not by a crash

_aborted = threading.Event()


class AbortedError(TmpipeError):
    """This task process was orphaned; it must not write to MLflow or the WebUI any more."""


def abort() -> None:
    _aborted.set()


def ensure_not_aborted(what: str) -> None:
    """Raise before ``what`` (a write) if this process was orphaned."""
    if _aborted.is_set():
        raise AbortedError(f"{what}: not sent, this task process lost its supervisor")


def watch_parent(
    abort_log: Path,
    describe: str,
    *,
    interval: float = WATCH_INTERVAL_SECONDS,
) -> threading.Thread:
    """Start a daemon thread that aborts this process once its parent process is gone.

    ``describe`` names the task in the marker line. A dead parent shows as a changed
    ``os.getppid()`` (the orphan is re-parented to init or a subreaper).
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                abort()
                stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
                line = f"{stamp} pid={os.getpid()} {describe}: supervisor pid {parent} died; task stopped, no further writes\n"
                try:
                    abort_log.parent.mkdir(parents=True, exist_ok=True)
                    with abort_log.open("a") as log:
                        log.write(line)
                finally:
                    os._exit(EXIT_CODE)

    thread = threading.Thread(target=watch, name="tmpipe-parent-watch", daemon=True)
    thread.start()
    return thread
