"""Nothing is replaced silently: replaced content and lineage stay listable, in both backends."""

import sqlite3

import pytest

from tmpipe.errors import NotFoundError
from tmpipe.store.http import HttpArtifactStore
from tmpipe.store.models import ArtifactCreate
from tmpipe.store.sqlite import SqliteArtifactStore

from ..servers import WEBUI_TOKEN
from .documents import DAG, signal_content


def signal(**changes):
    return ArtifactCreate(dag_id=DAG, dag_run_id="manual__1", symbol="AAA", artifact_type="signal", content=signal_content(**changes))


@pytest.fixture(params=["embedded", "http"])
def store(request, tmp_path):
    if request.param == "embedded":
        return SqliteArtifactStore(tmp_path / "e.db")
    return HttpArtifactStore(request.getfixturevalue("webui_server"), token=WEBUI_TOKEN, retries=0)


def test_a_rewrite_keeps_the_previous_content_as_a_revision(store):
    first = store.save_artifact(signal(created_at="2024-06-28T00:00:00+00:00"))
    store.set_lineage(first.id, "run-1", "7")
    rerun = store.save_artifact(signal(created_at="2024-06-28T01:00:00+00:00"))  # a re-run of the DAG run
    assert rerun.id == first.id and rerun.revision == 2
    assert rerun.content["created_at"] == "2024-06-28T01:00:00+00:00"
    assert (rerun.mlflow_run_id, rerun.mlflow_experiment_id) == ("run-1", "7")
    [kept] = store.list_revisions(first.id)
    assert (kept.revision, kept.replaced_by) == (1, "content")
    assert kept.content == first.content and (kept.mlflow_run_id, kept.mlflow_experiment_id) == ("run-1", "7")
    assert kept.written_at <= kept.replaced_at == rerun.updated_at


def test_writing_the_same_content_again_is_not_a_revision(store):
    first = store.save_artifact(signal())
    again = store.save_artifact(signal())  # a retried task
    assert again.revision == first.revision == 1 and again.updated_at == first.updated_at
    assert store.list_revisions(first.id) == []


def test_a_lineage_change_is_kept_but_filling_it_is_not(store):
    saved = store.save_artifact(signal())
    filled = store.set_lineage(saved.id, "run-1", "7")
    same = store.set_lineage(saved.id, "run-1", "7")
    assert filled.revision == same.revision == 1 and store.list_revisions(saved.id) == []
    changed = store.set_lineage(saved.id, "run-2", "8")
    assert changed.revision == 2 and (changed.mlflow_run_id, changed.mlflow_experiment_id) == ("run-2", "8")
    [kept] = store.list_revisions(saved.id)
    assert (kept.revision, kept.replaced_by, kept.mlflow_run_id, kept.mlflow_experiment_id) == (1, "lineage", "run-1", "7")
    assert kept.content == saved.content


def test_revisions_of_a_missing_artifact_are_not_found(store):
    with pytest.raises(NotFoundError):
        store.list_revisions(404)


def test_a_store_written_before_revisions_opens_and_keeps_them(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the artifacts table as it was before revisions were kept
        db.execute(
            "CREATE TABLE artifacts (id INTEGER PRIMARY KEY, dag_id TEXT NOT NULL, dag_run_id TEXT NOT NULL, symbol TEXT NOT NULL, "
            "artifact_type TEXT NOT NULL, content TEXT NOT NULL, mlflow_run_id TEXT, mlflow_experiment_id TEXT, "
            "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (dag_id, dag_run_id, symbol, artifact_type))"
        )
    store = SqliteArtifactStore(path)
    first = store.save_artifact(signal())
    assert store.save_artifact(signal(rationale="changed")).revision == 2
    assert [r.content for r in store.list_revisions(first.id)] == [first.content]
