"""Enabling, disabling and removing symbols and links: the same on the embedded store and the real server."""

import pytest

from tmpipe.errors import NotFoundError, StoreError
from tmpipe.store.base import find_link, select_symbols
from tmpipe.store.http import HttpArtifactStore
from tmpipe.store.models import ArtifactCreate, LinkUpdate, SymbolUpdate
from tmpipe.store.sqlite import SqliteArtifactStore

from ..servers import WEBUI_TOKEN
from .documents import DAG, signal_content

OTHER = "other_dag"


@pytest.fixture(params=["embedded", "http"])
def store(request, tmp_path):
    if request.param == "embedded":
        return SqliteArtifactStore(tmp_path / "e.db")
    return HttpArtifactStore(request.getfixturevalue("webui_server"), token=WEBUI_TOKEN, retries=0)


def linked(store, symbol="AAA", priority=100):
    store.add_symbol(symbol, priority=priority)
    store.add_link(symbol, DAG, config={"trademaster": {"epochs": 2}}, notes="core book")
    return store


def signal(symbol="AAA", run="manual__1", rationale="first"):
    content = signal_content(symbol, rationale=rationale)
    return ArtifactCreate(dag_id=DAG, dag_run_id=run, symbol=symbol, artifact_type="signal", content=content)


def test_a_disabled_symbol_is_not_selected_and_enabling_it_brings_it_back(store):
    linked(store, "AAA", priority=1)
    linked(store, "BBB", priority=2)
    disabled = store.update_symbol("AAA", SymbolUpdate(enabled=False))
    assert (disabled.enabled, disabled.priority, [l.dag_id for l in disabled.links]) == (False, 1, [DAG])
    assert [s.symbol for s in select_symbols(store.list_workflow_symbols(enabled_only=True), DAG)] == ["BBB"]
    store.update_symbol("AAA", SymbolUpdate(enabled=True, priority=3))
    assert [s.symbol for s in select_symbols(store.list_workflow_symbols(enabled_only=True), DAG)] == ["BBB", "AAA"]


def test_an_inactive_link_is_not_selected_and_its_config_is_not_applied(store):
    linked(store, "AAA")
    store.add_link("AAA", OTHER)
    link = store.update_link("AAA", DAG, LinkUpdate(is_active=False))
    assert (link.is_active, link.config, link.notes) == (False, {"trademaster": {"epochs": 2}}, "core book")
    symbols = store.list_workflow_symbols(enabled_only=True)
    assert select_symbols(symbols, DAG) == [] and [s.symbol for s in select_symbols(symbols, OTHER)] == ["AAA"]
    assert find_link(symbols, "AAA", DAG).link_config == {}  # a run naming AAA runs it with no link layer
    store.update_link("AAA", DAG, LinkUpdate(is_active=True))
    assert select_symbols(store.list_workflow_symbols(), DAG)[0].link_config == {"trademaster": {"epochs": 2}}


def test_a_link_update_changes_only_the_fields_given(store):
    linked(store)
    changed = store.update_link("AAA", DAG, LinkUpdate(config={"data": {"lookback": 5}}))
    assert (changed.is_active, changed.config, changed.notes) == (True, {"data": {"lookback": 5}}, "core book")
    cleared = store.update_link("AAA", DAG, LinkUpdate(notes=None))
    assert (cleared.config, cleared.notes) == ({"data": {"lookback": 5}}, None)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"trademaster": {"epoch": 2}}, "config.trademaster.epoch"),
        ({"webui": {"base_url": "http://127.0.0.1:1"}}, "config.webui.base_url: set only by the operator"),
    ],
)
def test_a_link_config_update_is_validated_like_a_new_link(store, config, message):
    linked(store)
    with pytest.raises(StoreError) as err:
        store.update_link("AAA", DAG, LinkUpdate(config=config))
    assert err.value.status == 422 and message in str(err.value)
    assert store.list_workflow_symbols()[0].links[0].config == {"trademaster": {"epochs": 2}}


def test_removing_a_link_deletes_it_and_keeps_the_symbol(store):
    linked(store)
    store.add_link("AAA", OTHER)
    store.remove_link("AAA", DAG)
    [entry] = store.list_workflow_symbols()
    assert [l.dag_id for l in entry.links] == [OTHER]
    with pytest.raises(NotFoundError, match=f"no link from workflow symbol AAA to DAG {DAG}"):
        store.remove_link("AAA", DAG)


def test_removing_a_symbol_deletes_its_links_and_keeps_its_artifacts_and_revisions(store):
    linked(store)
    first = store.save_artifact(signal())
    store.save_artifact(signal(rationale="second"))
    store.remove_symbol("AAA")
    assert store.list_workflow_symbols(enabled_only=False) == []
    [kept] = store.list_artifacts(symbol="AAA")
    assert kept.id == first.id and kept.revision == 2
    assert [r.content["rationale"] for r in store.list_revisions(kept.id)] == ["first"]
    # the name is free again, with no stale link
    store.add_symbol("AAA")
    assert store.list_workflow_symbols()[0].links == []


@pytest.mark.parametrize(
    "operation",
    [
        lambda s: s.update_symbol("ZZZ", SymbolUpdate(enabled=False)),
        lambda s: s.remove_symbol("ZZZ"),
        lambda s: s.update_link("ZZZ", DAG, LinkUpdate(is_active=False)),
        lambda s: s.remove_link("ZZZ", DAG),
    ],
)
def test_an_unknown_symbol_is_404_naming_it(store, operation):
    with pytest.raises(NotFoundError) as err:
        operation(store)
    assert err.value.status == 404 and "no workflow symbol ZZZ" in str(err.value)


def test_an_unknown_link_of_a_known_symbol_is_404_naming_both(store):
    linked(store)
    with pytest.raises(NotFoundError, match=f"no link from workflow symbol AAA to DAG {OTHER}"):
        store.update_link("AAA", OTHER, LinkUpdate(is_active=False))


def test_symbols_with_url_special_characters_are_managed_by_name(store):
    for symbol in ("^GSPC", "ES=F", "BRK.B"):
        linked(store, symbol)
    store.update_symbol("^GSPC", SymbolUpdate(enabled=False))
    store.update_link("ES=F", DAG, LinkUpdate(is_active=False))
    store.remove_symbol("BRK.B")
    state = {s.symbol: (s.enabled, [l.is_active for l in s.links]) for s in store.list_workflow_symbols(enabled_only=False)}
    assert state == {"^GSPC": (False, [True]), "ES=F": (True, [False])}
