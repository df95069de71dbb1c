"""The in-process Execution API built for the SDK's version serves that version as Airflow's full app does.

Each check runs in a fresh interpreter: Airflow caches the in-process server per process.
"""

import json
import os
import subprocess
import sys

from tmpipe import airflow_env

COMPARE = """
import json
from fastapi.openapi.utils import get_openapi
from airflow.api_fastapi.execution_api import routes, versions
from airflow.api_fastapi.execution_api.app import create_task_execution_api_app
from airflow.sdk.api.datamodels import _generated
from airflow.sdk.execution_time.supervisor import in_process_api_server
from tmpipe.in_process_api import build_for_sdk_version

def newest(app):
    if not app._cadwyn_initialized:
        app._cadwyn_initialize()  # what Cadwyn does on the app's first request
    router = app.router.versioned_routers[_generated.API_VERSION]
    shape = sorted([r.path, sorted(r.methods), r.name, str(r.response_model), r.status_code]
                   for r in router.routes if hasattr(r, "response_model"))
    return shape, get_openapi(title="t", version="v", routes=router.routes), sorted(app.router.versioned_routers)

globals_before = versions.bundle, routes.execution_api_router
sdk_version = _generated.API_VERSION
_generated.API_VERSION = "2025-01-01"  # an SDK that speaks an older version
refused_for_older_sdk = build_for_sdk_version() is False and in_process_api_server()._app is None
_generated.API_VERSION = sdk_version
import airflow.api_fastapi.execution_api.app as app_module
factory = app_module.create_task_execution_api_app
def factory_with_its_own_router(**kwargs):  # as if it had imported the router at its module's import
    swapped, routes.execution_api_router = routes.execution_api_router, globals_before[1]
    try:
        return factory(**kwargs)
    finally:
        routes.execution_api_router = swapped
app_module.create_task_execution_api_app = factory_with_its_own_router  # Cadwyn then refuses the one-version bundle
reset_after_failure = (build_for_sdk_version() is False and in_process_api_server()._app is None
                       and (versions.bundle, routes.execution_api_router) == globals_before)
app_module.create_task_execution_api_app = factory
built = build_for_sdk_version()
again = build_for_sdk_version()
restored = (versions.bundle, routes.execution_api_router) == globals_before
one_shape, one_openapi, one_versions = newest(in_process_api_server().app)
full_shape, full_openapi, full_versions = newest(create_task_execution_api_app())
print(json.dumps({"refused_for_older_sdk": refused_for_older_sdk, "reset_after_failure": reset_after_failure, "built": built, "again": again,
                  "restored": restored, "versions": [one_versions, full_versions], "routes": len(one_shape),
                  "same_routes": one_shape == full_shape, "same_openapi": one_openapi == full_openapi}))
"""


def test_app_for_the_sdk_version_serves_what_the_full_app_serves_for_it(tmp_path):
    env = os.environ | airflow_env.embedded_airflow_env(tmp_path) | {"AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False"}
    done = subprocess.run([sys.executable, "-c", COMPARE], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    one_versions, full_versions = result.pop("versions")
    assert len(one_versions) == 1 and len(full_versions) > 1 and one_versions[0] == full_versions[-1]
    assert result.pop("routes") > 30
    assert result == {"refused_for_older_sdk": True, "reset_after_failure": True, "built": True, "again": False, "restored": True,
                      "same_routes": True, "same_openapi": True}
