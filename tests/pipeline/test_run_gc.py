"""`tmpipe run` keeps its long-lived objects out of the garbage collector's traversals, collects
after every task without keeping what a task leaves, and shows the user none of Airflow's own
deprecation warnings about itself.

A run holds about a million tracked objects (Airflow with its in-process execution API, MLflow,
SQLAlchemy); every full collection, and the interpreter's collections at exit, traversed all of
them. Observed from inside one real run: a collector callback records the frozen count it sees
and every full collection, an Airflow listener plugin each task's end, and the last exit handler
the frozen count at the end.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import spec_file

pytestmark = pytest.mark.slow

PROBE = """
import atexit, gc, json, sys
seen, events = [], []
def record(phase, info):
    if phase == "start" and info["generation"] == 2:
        seen.append(gc.get_freeze_count())
        events.append("full collection")
gc.callbacks.append(record)
sys.modules["gc_probe_events"] = events  # the listener plugin appends each task's end here
# registered first, so it runs last: after the CLI's own exit path and every other exit handler
atexit.register(lambda: print("GC-PROBE " + json.dumps({"full_collections": len(seen), "max_frozen_in_run": max(seen, default=0),
                                                       "frozen_at_exit": gc.get_freeze_count(), "events": events}), flush=True))
sys.argv = ["tmpipe", *sys.argv[1:]]
from tmpipe.cli import main
main()
"""

# An Airflow plugin whose listener notes each task's start and end (the runner calls the end hook
# before before_stopping, its last one), between the full collections the probe notes.
PLUGIN = '''
import sys
from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

class TaskEnds:
    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance):
        sys.modules["gc_probe_events"].append("task started")

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance):
        sys.modules["gc_probe_events"].append("task ended")

    @hookimpl
    def on_task_instance_failed(self, previous_state, task_instance, error):
        sys.modules["gc_probe_events"].append("task ended")

class TaskEndsPlugin(AirflowPlugin):
    name = "gc_probe_task_ends"
    listeners = [TaskEnds()]
'''


@pytest.fixture(scope="module")
def probed_run(tmp_path_factory, migrated_home_copy):
    """One `tmpipe run` of one symbol in mode both (1 epoch) under the probe: its exit code, output and readings."""
    folder = tmp_path_factory.mktemp("gc_probe")
    home = migrated_home_copy(folder / "home")
    plugins = folder / "plugins"
    plugins.mkdir()
    (plugins / "gc_probe_task_ends.py").write_text(textwrap.dedent(PLUGIN))
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "run", "--spec", str(spec_file(folder)), "--symbols", "AAA", "--mode", "both"],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "TMPIPE_HOME": str(home), "TMPIPE__TRADEMASTER__EPOCHS": "1",
             "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("GC-PROBE ")]
    return result, json.loads(line.removeprefix("GC-PROBE "))


def test_a_run_freezes_its_long_lived_objects_and_exits_with_them_frozen(probed_run):
    _, probe = probed_run
    # full collections still run during the run, over what was created since the last freeze
    assert probe["full_collections"] >= 1
    # imports and the DagBag frozen before dag.test(): tens of thousands of objects
    assert probe["max_frozen_in_run"] > 50_000, probe
    # and frozen again at exit, so the interpreter's last collections skip them
    assert probe["frozen_at_exit"] > 50_000, probe


def test_every_task_ends_with_a_full_collection(probed_run):
    """The garbage a task leaves is freed as it ends, before the next task starts, not many tasks later."""
    _, probe = probed_run
    events = probe["events"]
    ends = [i for i, event in enumerate(events) if event == "task ended"]
    # resolve_symbols, the symbol's four stages, score_signals and summarize
    assert len(ends) == 7 and events.count("task started") == 7, events
    assert all(i + 1 < len(events) and events[i + 1] == "full collection" for i in ends), events


def test_the_run_shows_no_airflow_deprecation_warning_about_airflow_itself(probed_run):
    result, _ = probed_run
    output = result.stdout + result.stderr
    assert "AAA" in output  # the run's own progress lines are there
    assert "determine_kwargs" not in output and "DeprecatedImportWarning" not in output, output[-3000:]


# Tasks as the runner's freeze and collector see them: a first task imports many long-lived
# objects; every task still holds its state, in a reference cycle, when its runner's last hook runs.
SIMULATED_TASKS = """
import gc, json, weakref
from airflow.sdk.listener import get_listener_manager
from tmpipe.runner import FREEZE_AT_SURVIVORS, _long_lived_objects_frozen

class TaskState:
    pass

hook = get_listener_manager().hook
ended = []
with _long_lived_objects_frozen():
    frozen_at_start = gc.get_freeze_count()
    imported = [[i] for i in range(2 * FREEZE_AT_SURVIVORS)]
    for task in range(30):
        state = TaskState()
        state.cycle = state
        ended.append(weakref.ref(state))
        hook.before_stopping(component=None)
        del state
    still_alive = [i for i, ref in enumerate(ended) if ref() is not None]
    frozen_in_run = gc.get_freeze_count() - frozen_at_start
print(json.dumps({"still_alive": still_alive, "frozen_in_run": frozen_in_run, "frozen_after": gc.get_freeze_count()}))
"""


def test_what_a_task_leaves_is_freed_by_the_next_collection_not_frozen_for_the_run(tmp_path):
    """Freezing every collection's survivors froze each task's own state too: its supervisor,
    context and comms are still referenced as the task's last hook collects, and in reference
    cycles they were then kept until the run ended, once per task."""
    result = subprocess.run([sys.executable, "-c", SIMULATED_TASKS], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "AIRFLOW_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    # the first task's imports are frozen (with that task's own state), and nothing is left frozen after the run
    from tmpipe.runner import FREEZE_AT_SURVIVORS

    assert probe["frozen_in_run"] >= 2 * FREEZE_AT_SURVIVORS, probe
    assert probe["frozen_after"] == 0, probe
    # of 30 tasks, only the first (frozen with the imports) and the last (no collection since) remain
    assert probe["still_alive"] == [0, 29], probe
