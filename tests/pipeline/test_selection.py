"""resolve_symbols' cap and symbol_selection policy, on a real embedded store and a real WebUI server."""

import logging

import pytest
from tmpipe.errors import SymbolSelectionError
from tmpipe.pipeline.context import RunContext
from tmpipe.pipeline.stages import resolve_symbols
from tmpipe.store.factory import embedded_store_path
from tmpipe.store.models import LinkUpdate, SymbolUpdate
from tmpipe.store.sqlite import SqliteArtifactStore

from ..servers import WEBUI_TOKEN, webui_app_server
from .conftest import DAG_ID, spec_file


def context(tmp_path, conf=None, **spec_sections) -> RunContext:
    path = spec_file(tmp_path, **spec_sections)
    return RunContext(dag_id=DAG_ID, dag_run_id="manual__1", logical_date=None, conf=conf or {}, spec_path=str(path))


def link(store, *symbols: str) -> None:
    for priority, symbol in enumerate(symbols):
        store.add_symbol(symbol, priority=priority)
        store.add_link(symbol, DAG_ID)


@pytest.fixture
def store(tmpipe_home):
    return SqliteArtifactStore(embedded_store_path())


def test_webui_symbols_beyond_the_cap_are_named_not_silently_dropped(tmp_path, store, caplog):
    link(store, "AAA", "BBB", "CCC", "DDD")
    with caplog.at_level(logging.WARNING, logger="tmpipe"):
        selection = resolve_symbols(context(tmp_path, limits={"max_symbols": 2}))
    assert selection.symbols == ["AAA", "BBB"] and set(selection.links) == {"AAA", "BBB"}
    assert selection.dropped == ["CCC", "DDD"]
    assert "limits.max_symbols = 2: 2 symbols do not run in this DAG run: CCC, DDD" in caplog.text


def test_a_lower_conf_max_symbols_is_the_cap_it_names(tmp_path, store, caplog):
    link(store, "AAA", "BBB", "CCC")
    with caplog.at_level(logging.WARNING, logger="tmpipe"):
        selection = resolve_symbols(context(tmp_path, {"max_symbols": 1}))
    assert (selection.symbols, selection.dropped) == (["AAA"], ["BBB", "CCC"])
    assert "dag_run.conf max_symbols = 1: 2 symbols do not run in this DAG run: BBB, CCC" in caplog.text
    # conf may lower the spec's cap, never raise it
    assert resolve_symbols(context(tmp_path, {"max_symbols": 5}, limits={"max_symbols": 2})).dropped == ["CCC"]


def test_named_symbols_beyond_the_cap_fail_by_default(tmp_path, store):
    with pytest.raises(SymbolSelectionError) as raised:
        resolve_symbols(context(tmp_path, {"symbols": ["AAA", "BBB", "CCC"], "max_symbols": 2}))
    assert str(raised.value) == (
        "dag_run.conf names 3 symbols but dag_run.conf max_symbols is 2, so these would not run: CCC; name at most 2, "
        f"or set symbol_selection.on_too_many_symbols: truncate in {tmp_path / 'spec.yaml'}"
    )


def test_named_symbols_beyond_the_cap_are_truncated_when_the_spec_says_so(tmp_path, store):
    selection = resolve_symbols(
        context(tmp_path, {"symbols": ["CCC", "AAA", "BBB"]}, limits={"max_symbols": 2}, symbol_selection={"on_too_many_symbols": "truncate"})
    )
    assert (selection.symbols, selection.dropped) == (["CCC", "AAA"], ["BBB"])


def test_named_symbols_within_the_cap_drop_nothing(tmp_path, store):
    selection = resolve_symbols(context(tmp_path, {"symbols": ["AAA", "BBB"]}, limits={"max_symbols": 2}))
    assert (selection.symbols, selection.dropped, selection.no_symbols) == (["AAA", "BBB"], [], None)


def test_no_symbols_over_http_names_the_query_and_the_dag(tmp_path, tmpipe_home, monkeypatch):
    monkeypatch.setenv("TMPIPE_WEBUI_TOKEN", WEBUI_TOKEN)
    with webui_app_server(tmp_path / "webui.db") as url:
        store = SqliteArtifactStore(tmp_path / "webui.db")
        store.add_symbol("OFF", enabled=False)
        store.add_link("OFF", DAG_ID)  # a disabled symbol does not count
        store.add_symbol("ELSE")
        store.add_link("ELSE", "another_dag")  # nor one linked to another DAG
        ctx = context(tmp_path, defaults={"webui": {"backend": "http", "base_url": url}})
        with pytest.raises(SymbolSelectionError) as raised:
            resolve_symbols(ctx)
        assert str(raised.value).startswith(
            f"no symbols to run for DAG {DAG_ID}: the WebUI (GET {url}/api/workflow-symbols/?enabled_only=true) "
            f"lists no enabled symbol with an active link to {DAG_ID}; add one (tmpipe webui add-symbol SYM)"
        )
        succeeding = context(
            tmp_path, defaults={"webui": {"backend": "http", "base_url": url}}, symbol_selection={"on_no_symbols": "succeed"}
        )
        selection = resolve_symbols(succeeding)
        assert selection.symbols == [] and selection.no_symbols == str(raised.value)


def test_disabled_symbols_and_inactive_links_run_only_when_named(tmp_path, store, caplog):
    """Selection skips them; a dag_run.conf naming a symbol runs it anyway, with its link's
    config only while that link is active (a disabled symbol's active link still applies), and
    a warning says which ones the WebUI switched off."""
    for priority, symbol in enumerate(["AAA", "BBB", "CCC", "DDD"]):
        store.add_symbol(symbol, priority=priority)
        store.add_link(symbol, DAG_ID, config={"trademaster": {"epochs": priority + 1}})
    store.update_symbol("AAA", SymbolUpdate(enabled=False))
    store.update_link("BBB", DAG_ID, LinkUpdate(is_active=False))
    store.remove_symbol("CCC")
    assert resolve_symbols(context(tmp_path)).symbols == ["DDD"]
    with caplog.at_level(logging.WARNING, logger="tmpipe"):
        named = resolve_symbols(context(tmp_path, {"symbols": ["AAA", "BBB", "CCC", "DDD"]}))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "AAA: disabled in the WebUI; it runs because dag_run.conf names it",
        f"BBB: its WebUI link to {DAG_ID} is inactive, so its link config is not applied; it runs because dag_run.conf names it",
    ]
    assert named.symbols == ["AAA", "BBB", "CCC", "DDD"]
    assert [named.links[s]["config"] for s in named.symbols] == [
        {"trademaster": {"epochs": 1}},
        {},
        {},
        {"trademaster": {"epochs": 4}},
    ]
