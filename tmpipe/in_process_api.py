"""The Execution API that ``dag.test()`` serves in-process, built for the one version its client speaks.

Airflow versions its Execution API with Cadwyn, which on the app's first request builds routers
and models for every version the server supports (nine in Airflow 3.3): about 3 s of CPU in
every ``tmpipe run`` process, a fifth of a 3-symbol run (benchmarks/README.md). In-process, the
only client is this installation's Task SDK, which sends its own version on every request. When
that is the server's newest version and the head carries no changes of its own, the routers of
the older versions are never used: the app is built by Airflow's own factory, with its
in-process auth overrides, over a bundle of that one version. Its routes and OpenAPI schema are
those of the full app's newest version (tests/test_in_process_api.py). In every other case
Airflow builds its app as it always does.
"""

from __future__ import annotations

import copy
import logging

log = logging.getLogger(__name__)


def build_for_sdk_version() -> bool:
    """Build the in-process API app for the SDK's version only; False where that does not apply.

    Call before ``dag.test()``: Airflow caches the in-process server per process, and the app
    keeps the bundle and router it was built with. The module globals Airflow's factory reads
    are swapped only while it runs; the routers are generated here rather than on the first
    request, and if anything fails the server is reset for Airflow to build its full app.
    """
    try:
        from airflow.api_fastapi.execution_api import routes, versions
        from airflow.sdk.api.datamodels._generated import API_VERSION
        from airflow.sdk.execution_time.supervisor import in_process_api_server
        from cadwyn import HeadVersion, Version, VersionBundle
        from cadwyn.route_generation import _DELETED_ROUTE_TAG
    except ImportError as exc:  # another Airflow or Cadwyn: Airflow's own app, for every version
        log.debug("in-process Execution API left to Airflow: %s", exc)
        return False

    server = in_process_api_server()
    full_bundle, full_router = versions.bundle, routes.execution_api_router
    if server._app is not None:
        return False  # built already, by an earlier dag.test() in this process
    if full_bundle.versions[0].value != API_VERSION or full_bundle.head_version.changes:
        log.debug("in-process Execution API left to Airflow: the SDK speaks %s, the server's newest is %s (%d head changes)",
                  API_VERSION, full_bundle.versions[0].value, len(full_bundle.head_version.changes))
        return False

    one_version = VersionBundle(HeadVersion(), Version(API_VERSION))
    newest_router = copy.copy(full_router)  # without the routes that exist only in older versions
    newest_router.routes = [route for route in full_router.routes if _DELETED_ROUTE_TAG not in getattr(route, "tags", ())]
    versions.bundle, routes.execution_api_router = one_version, newest_router
    try:
        app = server.app
    finally:
        versions.bundle, routes.execution_api_router = full_bundle, full_router
    try:
        if app.versions is not one_version:
            raise LookupError("this Airflow's factory did not read the swapped bundle")
        app._cadwyn_initialize()  # what the first request would do, now, so that a failure falls back
    except Exception as exc:  # any failure: Airflow builds its own app, for every version
        log.debug("in-process Execution API left to Airflow: %s", exc)
        del server.app
        server._app = None
        return False
    return True
