"""The HTTP client against `tmpipe webui serve` on 127.0.0.1, with faults injected by a fault_proxy."""

import json
from pathlib import Path

import pytest

from tmpipe.errors import NotFoundError, StoreError
from tmpipe.store.http import HttpArtifactStore
from tmpipe.store.models import ArtifactCreate
from tmpipe.store.server import create_app
from tmpipe.store.sqlite import SqliteArtifactStore

from ..servers import WEBUI_TOKEN
from .documents import DAG, signal_content, trace_content


def signal(run="manual__1", symbol="AAA", content=None):
    return ArtifactCreate(dag_id=DAG, dag_run_id=run, symbol=symbol, artifact_type="signal", content=content or signal_content(symbol))


def client(url, token=WEBUI_TOKEN, **kwargs):
    return HttpArtifactStore(url, token=token, backoff_seconds=0.01, **kwargs)


def test_symbols_links_and_lineage_round_trip(webui_server):
    store = client(webui_server)
    store.add_symbol("BBB", priority=2)
    store.add_symbol("AAA", priority=1)
    store.add_symbol("OFF", priority=0, enabled=False)
    store.add_link("AAA", DAG, config={"trademaster": {"epochs": 2}}, notes="core book")
    store.add_link("BBB", "some_other_dag")
    listed = store.list_workflow_symbols(enabled_only=True)
    assert [s.symbol for s in listed] == ["AAA", "BBB"]
    assert listed[0].links[0].config == {"trademaster": {"epochs": 2}}
    saved = store.save_artifact(signal())
    updated = store.set_lineage(saved.id, "run123", "7")
    assert (updated.mlflow_run_id, updated.mlflow_experiment_id) == ("run123", "7")
    assert store.list_artifacts(dag_id=DAG, symbol="AAA")[0].mlflow_run_id == "run123"


def test_500s_are_retried_then_succeed(fault_proxy):
    fault_proxy.script = ["500", "500"]
    assert client(fault_proxy.url, retries=3).list_workflow_symbols() == []
    assert [fault for _, _, fault in fault_proxy.seen] == ["500", "500", "pass"]


def test_timeouts_are_retried(fault_proxy):
    fault_proxy.script = ["stall"]
    saved = client(fault_proxy.url, retries=2, timeout_seconds=0.5).save_artifact(signal())
    assert saved.id >= 1
    assert [fault for _, _, fault in fault_proxy.seen] == ["stall", "pass"]


def test_retries_are_bounded(fault_proxy):
    fault_proxy.script = ["500"] * 5
    with pytest.raises(StoreError) as err:
        client(fault_proxy.url, retries=2).list_workflow_symbols()
    assert err.value.status == 500 and err.value.retryable
    assert len(fault_proxy.seen) == 3


def test_404_is_a_clear_error_and_not_retried(fault_proxy):
    with pytest.raises(NotFoundError) as err:
        client(fault_proxy.url).set_lineage(999, "r", "1")
    assert err.value.status == 404
    assert "PATCH" in str(err.value) and "/api/artifacts/999/" in str(err.value) and "no artifact 999" in str(err.value)
    assert len(fault_proxy.seen) == 1


def test_other_4xx_is_not_retried(fault_proxy):
    store = client(fault_proxy.url)
    store.add_symbol("AAA")
    with pytest.raises(StoreError) as err:
        store.add_symbol("AAA")
    assert err.value.status == 409 and not err.value.retryable
    assert len(fault_proxy.seen) == 2


def test_retried_persist_leaves_exactly_one_artifact(fault_proxy):
    """The server stores the artifact, the answer is lost, the client retries: still one."""
    fault_proxy.script = ["drop_after"]
    store = client(fault_proxy.url, retries=2)
    first = store.save_artifact(signal(content=signal_content(rationale="try 1")))
    again = store.save_artifact(signal(content=signal_content(rationale="try 2")))  # a retried task
    assert first.id == again.id
    artifacts = store.list_artifacts(dag_id=DAG, dag_run_id="manual__1", symbol="AAA", artifact_type="signal")
    assert len(artifacts) == 1 and artifacts[0].content["rationale"] == "try 2"
    assert [fault for method, _, fault in fault_proxy.seen if method == "POST"] == ["drop_after", "pass", "pass"]


@pytest.mark.parametrize("kind", ["embedded", "http"])
def test_embedded_and_http_stores_have_the_same_semantics(kind, tmp_path, webui_server):
    store = SqliteArtifactStore(tmp_path / "e.db") if kind == "embedded" else client(webui_server)
    store.add_symbol("AAA")
    store.add_link("AAA", DAG, config={"data": {"lookback": 5}})
    store.add_link("AAA", DAG, config={"data": {"lookback": 6}})  # re-linking updates the link
    assert [l.config for l in store.list_workflow_symbols()[0].links] == [{"data": {"lookback": 6}}]
    a = store.save_artifact(signal())
    b = store.save_artifact(signal())
    llm = store.save_artifact(signal().model_copy(update={"artifact_type": "llm", "content": trace_content()}))
    assert a.id == b.id != llm.id
    with pytest.raises(NotFoundError):
        store.set_lineage(12345, "r", "1")
    with pytest.raises(NotFoundError):
        store.add_link("ZZZ", DAG)


def test_openapi_contract_is_documented():
    documented = json.loads(Path("docs/webui-openapi.json").read_text())
    assert documented == create_app(SqliteArtifactStore(":memory:"), token=None).openapi()
