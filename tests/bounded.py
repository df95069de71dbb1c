"""Run `tmpipe` in a child process with a memory cap and a time limit (for hostile input).

Shared by the input tests (import with `from ..bounded import run_tmpipe_bounded`). A bomb
that gets past the limits would be killed by the cap or the timeout instead of the machine.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from dataclasses import dataclass

MEMORY_CAP_BYTES = 1024 * 1024 * 1024
TIME_LIMIT_SECONDS = 10.0


@dataclass
class BoundedResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))


def run_tmpipe_bounded(*args: str, env: dict[str, str] | None = None) -> BoundedResult:
    """`python -m tmpipe ARGS` under the cap; the time counts the command only, not the import."""
    script = (
        "import sys, time\n"
        "from tmpipe.cli import main\n"
        "sys.stderr.write(f'@start {time.monotonic()}\\n')\n"
        "main(sys.argv[1:])\n"
    )
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_SECONDS + 30,  # generous for the import on a busy machine
        preexec_fn=_cap_memory,
        env=env,
    )
    ended = time.monotonic()
    marker, _, stderr = process.stderr.partition("\n")
    command_started = float(marker.removeprefix("@start ")) if marker.startswith("@start ") else started
    return BoundedResult(process.returncode, process.stdout, stderr if marker.startswith("@start ") else process.stderr,
                         ended - command_started)
