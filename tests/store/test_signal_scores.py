"""A signal_score is written under its scoring run's identity and names the signal it grades; each
signal is graded once. In both backends: the embedded SQLite store and `tmpipe webui serve` over HTTP."""

import json
import sqlite3

import pytest

from tmpipe.errors import StoreError
from tmpipe.store.http import HttpArtifactStore
from tmpipe.store.models import ArtifactCreate
from tmpipe.store.sqlite import SqliteArtifactStore

from ..servers import WEBUI_TOKEN
from .documents import DAG, score_content, signal_content

SCORER = (DAG, "scheduled__2024-07-08T00:00:00+00:00")
OTHER_SCORER = ("tmpipe-cli", "cli__20240709T000000")


@pytest.fixture(params=["embedded", "http"])
def store(request, tmp_path):
    if request.param == "embedded":
        return SqliteArtifactStore(tmp_path / "e.db")
    return HttpArtifactStore(request.getfixturevalue("webui_server"), token=WEBUI_TOKEN, retries=0)


def _signal(store, run: str, symbol: str = "AAA"):
    return store.save_artifact(ArtifactCreate(dag_id=DAG, dag_run_id=run, symbol=symbol, artifact_type="signal",
                                              content=signal_content(symbol)))


def _score(signal, scorer=SCORER, graded_signal_id="same", **changes) -> ArtifactCreate:
    return ArtifactCreate(dag_id=scorer[0], dag_run_id=scorer[1], symbol=signal.symbol, artifact_type="signal_score",
                          content=score_content(signal.id, scorer=scorer, symbol=signal.symbol, signal_run=signal.dag_run_id,
                                                **changes),
                          graded_signal_id=signal.id if graded_signal_id == "same" else graded_signal_id)


def test_one_scoring_run_grades_many_signals_of_a_symbol_under_its_own_identity(store):
    signals = [_signal(store, f"manual__{n}") for n in range(3)]
    scores = [store.save_artifact(_score(s)) for s in signals]
    assert len({s.id for s in scores}) == 3 and all(s.revision == 1 for s in scores)
    listed = store.list_artifacts(dag_id=SCORER[0], dag_run_id=SCORER[1], artifact_type="signal_score")
    assert [a.graded_signal_id for a in listed] == [s.id for s in signals]
    assert {(a.dag_id, a.dag_run_id) for a in listed} == {SCORER}
    assert [a.content["signal"]["dag_run_id"] for a in listed] == ["manual__0", "manual__1", "manual__2"]
    # The graded signals themselves are untouched, and a signal or llm artifact names no graded signal.
    assert all(a.graded_signal_id is None and a.revision == 1 for a in store.list_artifacts(artifact_type="signal"))


def test_a_signal_is_graded_once_a_retried_write_changes_nothing_and_another_run_is_refused(store):
    signal = _signal(store, "manual__1")
    first = store.save_artifact(_score(signal))
    again = store.save_artifact(_score(signal))
    assert (again.id, again.revision, again.updated_at) == (first.id, 1, first.updated_at)
    with pytest.raises(StoreError) as refused:
        store.save_artifact(_score(signal, scorer=OTHER_SCORER))
    assert refused.value.status == 409 and "graded already" in str(refused.value)
    assert [a.id for a in store.list_artifacts(artifact_type="signal_score")] == [first.id]


@pytest.mark.parametrize("graded_signal_id, changes, problem", [
    (None, {}, "graded_signal_id: a signal_score artifact names the signal artifact it grades"),
    (999, {}, "is not graded_signal_id 999"),
    ("same", {"scored_by": {"dag_id": DAG, "dag_run_id": "manual__1"}}, "content.scored_by"),
])
def test_a_score_must_name_its_graded_signal_and_its_own_run(store, graded_signal_id, changes, problem):
    signal = _signal(store, "manual__1")
    with pytest.raises(StoreError) as refused:
        store.save_artifact(_score(signal, graded_signal_id=graded_signal_id, **changes))
    assert refused.value.status == 422 and problem in str(refused.value)


def test_a_score_of_a_missing_or_mismatched_signal_is_refused(store):
    signal, other = _signal(store, "manual__1"), _signal(store, "manual__2", symbol="BBB")
    missing = _score(signal).model_copy(update={"graded_signal_id": 999})
    missing.content["signal"]["artifact_id"] = 999
    wrong_run = _score(signal)
    wrong_run.content["signal"]["dag_run_id"] = "manual__7"
    other_symbol = _score(signal).model_copy(update={"graded_signal_id": other.id})
    other_symbol.content["signal"]["artifact_id"] = other.id
    other_symbol.content["signal"]["dag_run_id"] = "manual__2"
    for bad, problem in ((missing, "no artifact 999"), (wrong_run, "content.signal.dag_run_id"),
                         (other_symbol, "is a signal of BBB")):
        with pytest.raises(StoreError) as refused:
            store.save_artifact(bad)
        assert refused.value.status == 422 and problem in str(refused.value), problem
    assert store.list_artifacts(artifact_type="signal_score") == []


def test_only_a_score_names_a_graded_signal(store):
    signal = _signal(store, "manual__1")
    with pytest.raises(StoreError) as refused:
        store.save_artifact(ArtifactCreate(dag_id=DAG, dag_run_id="manual__2", symbol="AAA", artifact_type="signal",
                                           content=signal_content(), graded_signal_id=signal.id))
    assert refused.value.status == 422 and "only a signal_score artifact names a graded signal" in str(refused.value)


def test_a_store_with_scores_keyed_by_their_signal_opens_and_keeps_each_graded_once(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the artifacts table as it was before graded_signal_id
        db.execute(
            "CREATE TABLE artifacts (id INTEGER PRIMARY KEY, dag_id TEXT NOT NULL, dag_run_id TEXT NOT NULL, symbol TEXT NOT NULL, "
            "artifact_type TEXT NOT NULL, content TEXT NOT NULL, mlflow_run_id TEXT, mlflow_experiment_id TEXT, "
            "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 1, "
            "UNIQUE (dag_id, dag_run_id, symbol, artifact_type))"
        )
        stamp = "2024-07-08T00:00:00+00:00"
        old_score = score_content(1, scorer=OTHER_SCORER)
        old_score["signal"].pop("mlflow_experiment_id")  # not kept before
        db.executemany(
            "INSERT INTO artifacts (id, dag_id, dag_run_id, symbol, artifact_type, content, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(1, DAG, "manual__1", "AAA", "signal", json.dumps(signal_content()), stamp, stamp),
             (2, DAG, "manual__1", "AAA", "signal_score", json.dumps(old_score), stamp, stamp)],
        )
    store = SqliteArtifactStore(path)
    kept = store.get_artifact(2)
    assert (kept.dag_run_id, kept.graded_signal_id, kept.content) == ("manual__1", 1, old_score)
    signal = store.get_artifact(1)
    with pytest.raises(StoreError) as refused:
        store.save_artifact(_score(signal))
    assert refused.value.status == 409
    second = _signal(store, "manual__2")
    assert store.save_artifact(_score(second)).graded_signal_id == second.id
    assert SqliteArtifactStore(path).get_artifact(2) == kept  # opening it again changes nothing
