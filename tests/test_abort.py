"""An orphaned task process stops within seconds and leaves a marker line (real processes, real SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

# The "supervisor" forks the "task process", which watches it and writes a line every 50 ms
# through the same guard the MLflow and WebUI clients use, until the guard refuses.
SUPERVISOR = """
import os, sys, time
from pathlib import Path
workdir = Path(sys.argv[1])
if os.fork() == 0:
    from tmpipe.abort import ensure_not_aborted, watch_parent
    watch_parent(workdir / "aborted.log", "dag run task[0] try 1", interval=0.2)
    (workdir / "task.pid").write_text(str(os.getpid()))
    while True:
        ensure_not_aborted("write")
        with (workdir / "writes").open("a") as out:
            out.write(f"{time.monotonic()}\\n")
        time.sleep(0.05)
else:
    time.sleep(600)
"""


def test_task_process_stops_within_seconds_when_its_supervisor_is_killed(tmp_path):
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(tmp_path)], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "writes").exists():
            assert time.monotonic() < deadline and supervisor.poll() is None, "task process did not start"
            time.sleep(0.05)  # waiting for the child to start writing, not a timing assumption
        task = psutil.Process(int((tmp_path / "task.pid").read_text()))
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
        killed_at = time.monotonic()
        gone, _ = psutil.wait_procs([task], timeout=10)
        stopped_after = time.monotonic() - killed_at
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        if (tmp_path / "task.pid").exists() and psutil.pid_exists(pid := int((tmp_path / "task.pid").read_text())):
            os.kill(pid, signal.SIGKILL)
    assert gone, "the orphaned task process is still running"
    assert stopped_after < 5
    marker = (tmp_path / "aborted.log").read_text().splitlines()
    assert len(marker) == 1 and f"pid={task.pid} dag run task[0] try 1: supervisor pid {supervisor.pid} died" in marker[0]
    last_write = float((tmp_path / "writes").read_text().split()[-1])
    assert last_write < killed_at + 1.0  # nothing written after the watch noticed (0.2 s polls)


def test_a_process_with_a_living_parent_keeps_running(tmp_path):
    code = "import time; from pathlib import Path; from tmpipe.abort import watch_parent; " \
        f"watch_parent(Path({str(tmp_path / 'aborted.log')!r}), 'x', interval=0.05); time.sleep(1); print('finished')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "finished", done.stderr
    assert not (tmp_path / "aborted.log").exists()
