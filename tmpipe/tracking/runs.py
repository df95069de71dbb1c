"""Get-or-create the MLflow run of one symbol in one DAG run, and close it.

Only ``MlflowClient`` with explicit run ids: no global active run, because several tasks
may share a process under ``dag.test()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Mapping

from tmpipe.errors import TrackingError
from tmpipe.tracking.run_identity import (
    RunRef,
    TrackingContext,
    default_artifact_location,
    sqlite_path,
    tags_filter,
)
from tmpipe.tracking.retry import call_with_retry, with_retry

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")


@contextlib.contextmanager
def _sqlite_file_lock(tracking_uri: str, purpose: str) -> Iterator[None]:
    """Cross-process lock next to a SQLite store (no-op for servers)."""
    db = sqlite_path(tracking_uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(f"{db.name}.{purpose}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.lru_cache(maxsize=16)
def _cached_client(tracking_uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    # MLflow creates a SQLite store's tables without a lock; concurrent first touches collide.
    with _sqlite_file_lock(tracking_uri, "init"):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        if sqlite_path(tracking_uri) is not None:
            # Cheap reads that build both stores (and so the tables) while holding the lock.
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
    return client


def client_for(tracking_uri: str) -> MlflowClient:
    """One cached client per tracking URI (stores and engines are reused)."""
    return call_with_retry("connect", lambda: _cached_client(tracking_uri))


def client_before_fork(tracking_uri: str) -> None:
    """The cached client built now, in a process about to fork its tasks, so that each forked task
    starts with it instead of building its stores again. Their database connections are closed
    first: a connection must not cross a fork, and each process then opens its own."""
    client = client_for(tracking_uri)
    stores = [client._tracking_client.store]
    with contextlib.suppress(Exception):  # no registry store behind this URI
        stores.append(client._get_registry_client().store)
    for store in stores:
        engine = getattr(store, "engine", None)
        if engine is not None:
            engine.dispose()


def _experiment_id(client: MlflowClient, tracking_uri: str, name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    try:
        return client.create_experiment(
            name, artifact_location=default_artifact_location(tracking_uri, name)
        )
    except MlflowException as exc:
        # Another process created it between our lookup and our create.
        if exc.error_code != "RESOURCE_ALREADY_EXISTS" and "already exists" not in str(exc):
            raise
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


@with_retry("get or create experiment")
def get_or_create_experiment(tracking_uri: str, name: str) -> str:
    """Experiment id by name, created (with a local artifact root for SQLite) if missing."""
    return _experiment_id(client_for(tracking_uri), tracking_uri, name)


def _ref(run) -> RunRef:
    return RunRef(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        run_name=run.info.run_name,
        artifact_uri=run.info.artifact_uri,
    )


def _find_runs(client: MlflowClient, experiment_id: str, ctx: TrackingContext) -> list:
    runs = client.search_runs(
        [experiment_id], filter_string=tags_filter(ctx.identity_tags()), max_results=50
    )
    # Oldest first, run id as tie-breaker, so racing processes agree on the survivor.
    return sorted(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id))


def _handed_over_run(client: MlflowClient, ctx: TrackingContext, run_id: str):
    """The run an earlier stage handed over, if it exists and is (dag_id, dag_run_id, symbol)'s."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        run = None
    if run is not None and run.info.lifecycle_stage != "deleted":
        tags = run.data.tags
        if all(tags.get(key) == value for key, value in ctx.identity_tags().items()):
            return run
    log.warning("MLflow run %s handed over to %s is not its run of %s; finding the run by its tags",
                run_id, ctx.symbol, ctx.dag_run_id)
    return None


@with_retry("get or create run")
def get_or_create_run(ctx: TrackingContext, run_id: str | None = None, tags: Mapping[str, object] | None = None) -> RunRef:
    """The run of (dag_id, dag_run_id, symbol); a retried or cleared task reuses it.

    ``run_id`` is the run an earlier stage of the symbol handed over (its XCom); when it is
    this symbol's run it is used as is. Otherwise (a mode's first stage, a missing hand-over)
    the run is found by its identity tags or created: find-then-create is serialised by a file
    lock on SQLite; against a server, a process that sees it lost a creation race deletes its
    own copy and joins the oldest run. The run is (re)marked RUNNING and its per-try tags are
    refreshed, with ``tags`` (e.g. the stage's) in the same call.
    """
    client = client_for(ctx.tracking_uri)
    run = _handed_over_run(client, ctx, run_id) if run_id else None
    if run is None:
        run = _find_or_create_run(client, ctx)
    if run.info.status != "RUNNING":
        client.update_run(run.info.run_id, status="RUNNING")
    _set_tags(client, run.info.run_id, {**ctx.all_tags(), **(tags or {})})
    return _ref(run)


def _find_or_create_run(client: MlflowClient, ctx: TrackingContext):
    experiment_id = _experiment_id(client, ctx.tracking_uri, ctx.experiment)
    with _sqlite_file_lock(ctx.tracking_uri, "runs"):
        found = _find_runs(client, experiment_id, ctx)
        if not found:
            created = client.create_run(experiment_id, run_name=ctx.run_name(), tags=ctx.all_tags())
            found = _find_runs(client, experiment_id, ctx) or [created]
            for duplicate in found[1:]:
                if duplicate.info.run_id == created.info.run_id:
                    client.delete_run(duplicate.info.run_id)
    return found[0]


def _set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, object]) -> None:
    from mlflow.entities import RunTag
    from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH, MAX_TAG_VAL_LENGTH

    items = [RunTag(str(k), str(v)[:MAX_TAG_VAL_LENGTH]) for k, v in tags.items() if v is not None]
    for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=items[start : start + MAX_PARAMS_TAGS_PER_BATCH])


@with_retry("set tags")
def set_tags(tracking_uri: str, run_id: str, tags: dict[str, object]) -> None:
    """Set (overwrite) run tags; None values are skipped, long values truncated."""
    _set_tags(client_for(tracking_uri), run_id, tags)


@with_retry("end run")
def end_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Give the run a terminal status (FINISHED, FAILED or KILLED)."""
    if status not in TERMINAL_STATUSES:
        raise TrackingError(f"end_run needs a terminal status {TERMINAL_STATUSES}, got {status!r}")
    client_for(tracking_uri).set_terminated(run_id, status=status)


@contextlib.contextmanager
def stage_run(
    ctx: TrackingContext, *, last_stage: bool, run_id: str | None = None, tags: Mapping[str, object] | None = None
) -> Iterator[RunRef]:
    """Run one pipeline stage inside the symbol's run (``run_id``: handed over by the earlier stage),
    setting ``tags`` on it with the run's own.

    On an exception the run ends FAILED (and the exception propagates); after the last stage
    of the mode it ends FINISHED; otherwise it stays RUNNING for the next stage.
    """
    run = get_or_create_run(ctx, run_id, tags)
    try:
        yield run
    except BaseException:
        try:
            end_run(ctx.tracking_uri, run.run_id, "FAILED")
        except TrackingError as tracking_failure:  # keep the stage's own error in front
            log.warning("could not mark run %s FAILED: %s", run.run_id, tracking_failure)
        raise
    finally:
        _forget_artifact_repository(run.run_id)
    if last_stage:
        end_run(ctx.tracking_uri, run.run_id, "FINISHED")


def _forget_artifact_repository(run_id: str) -> None:
    """Drop the artifact repository MLflow cached for this run (with its thread pool and queue).

    MLflow keeps one per run for the life of the process, up to 1,024; a stage is the last use
    of it in its task. In a deployment each task is its own process, but ``tmpipe run`` runs a
    whole DAG run in one, where they piled up by one per symbol (benchmarks/README.md).
    """
    from mlflow.tracking._tracking_service import utils

    cache = getattr(utils, "_artifact_repos_cache", None)  # MLflow's own name; a test pins it
    if cache is not None:
        cache.pop(run_id, None)
