"""No vendor telemetry: what a task process does (build the DAG, log to MLflow) resolves and
connects to nothing but loopback. MLflow 3 looked up config.mlflow-telemetry.io on its first
client call unless told not to; dag-factory reports DAG builds unless told not to."""

import json
import os
import socket
import subprocess
import sys

# Variables under which MLflow, dag-factory or the test run itself would already keep quiet; the
# child runs without them so that only tmpipe's own defaults can turn telemetry off.
QUIETING = (
    "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "PYTEST_CURRENT_TEST",
    "CI", "GITHUB_ACTIONS", "CIRCLECI", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "TF_BUILD",
    "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE", "TEAMCITY_VERSION", "CLOUD_RUN_EXECUTION",
)

CHILD = """
import json, sys, time
hosts = []
def audit(event, args):
    if event == "socket.getaddrinfo":
        hosts.append(str(args[0]))
    elif event == "socket.connect" and isinstance(args[1], tuple):
        hosts.append(str(args[1][0]))
sys.addaudithook(audit)

from tmpipe.generator import build_dags
from tmpipe.tracking import client_for

dags = {}
build_dags(dags)
client = client_for("sqlite:///" + sys.argv[1])
run = client.create_run(client.create_experiment("telemetry-probe"))
client.log_metric(run.info.run_id, "probe", 1.0)
client.set_terminated(run.info.run_id)
time.sleep(0.5)  # MLflow's telemetry thread starts on the first client call; let it try
print(json.dumps({"dags": sorted(dags), "hosts": sorted(set(hosts))}))
"""

LOOPBACK = {"127.0.0.1", "::1", "localhost", "", socket.gethostname(), socket.getfqdn()}


def test_building_the_dag_and_logging_to_mlflow_call_no_vendor(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in QUIETING}
    env["TMPIPE_HOME"] = str(tmp_path / "home")
    result = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "mlflow.db")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert "trademaster_autogen_pipeline_workflow" in seen["dags"]
    assert set(seen["hosts"]) <= LOOPBACK, seen["hosts"]
