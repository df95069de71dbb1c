"""A symbol trains only on data that names it, whichever layer chose the source."""

import json

import pytest
import yaml

from tmpipe.config.resolver import resolve
from tmpipe.config.symbol_data import check_symbol_data
from tmpipe.errors import DataError
from tmpipe.spec.loader import default_spec_path, load_spec


def write_spec(tmp_path, defaults_data=None, symbols=None, demo_symbols=("SPX",)):
    doc = {"schema_version": 1, "dag": {"dag_id": "demo"}, "demo_symbols": list(demo_symbols),
           "defaults": {"data": defaults_data} if defaults_data else {}, "symbols": symbols or {}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_spec(path)


def check(spec, symbol, **layers):
    check_symbol_data(spec, resolve(spec, symbol, environ=layers.pop("environ", {}), **layers))


def test_shipped_spec_gives_demo_bars_to_its_demo_symbols_only():
    spec = load_spec(default_spec_path())
    for symbol in ("SPX", "NDX"):
        check(spec, symbol)
    with pytest.raises(DataError) as failed:
        check(spec, "X")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("X: demo bars (sp500) are for the spec's demo_symbols (SPX, NDX), not X; set symbols.X.data ")
    assert "a path with {symbol}, or source yfinance" in message
    assert "(data.source demo set by spec defaults (" in message  # and the file:line that set it:
    line = next(n for n, text in enumerate(open(spec.path), 1) if text.strip().startswith("source: demo"))
    assert message.endswith(f"trademaster_autogen_pipeline_workflow.yaml:{line}))")


@pytest.mark.parametrize("defaults_data", [None, {"source": "demo", "demo_series": "synthetic"}])
def test_demo_from_a_shared_layer_is_refused_for_an_unlisted_symbol(tmp_path, defaults_data):
    spec = write_spec(tmp_path, defaults_data)
    check(spec, "SPX")
    with pytest.raises(DataError, match=r"^AAPL: demo bars"):
        check(spec, "AAPL")


def test_listing_a_symbol_without_choosing_its_data_does_not_give_it_demo_bars(tmp_path):
    spec = write_spec(tmp_path, symbols={"AAPL": {"trademaster": {"epochs": 3}},
                                         "BTC": {"data": {"demo_series": "synthetic"}},
                                         "ETH": {"data": {"source": "demo"}}})
    with pytest.raises(DataError, match="^AAPL: "):
        check(spec, "AAPL")
    check(spec, "BTC")
    check(spec, "ETH")


@pytest.mark.parametrize("layer", ["conf_config", "link_config"])
def test_a_run_or_link_cannot_hand_demo_bars_to_an_unlisted_symbol(tmp_path, layer):
    bars = tmp_path / "X.csv"
    spec = write_spec(tmp_path, {"source": "csv", "path": str(tmp_path / "{symbol}.csv")})
    check(spec, "X")
    with pytest.raises(DataError, match=r"^X: demo bars .*data\.source demo set by (dag_run\.conf|webui link config)"):
        check(spec, "X", **{layer: {"data": {"source": "demo"}}})
    assert not bars.exists()  # the check reads nothing


@pytest.mark.parametrize("layer", ["defaults", "environ"])
def test_a_shared_path_without_symbol_pattern_names_no_symbol(tmp_path, layer):
    # (data.path is operator-only: a run or a link cannot set one at all, see tests/config/test_trust.py)
    path = str(tmp_path / "bars.csv")
    if layer == "defaults":
        spec, kwargs = write_spec(tmp_path, {"source": "csv", "path": path}), {}
    else:
        spec = write_spec(tmp_path, {"source": "csv"})
        kwargs = {"environ": {"TMPIPE__DATA__PATH": path}}
    with pytest.raises(DataError) as failed:
        check(spec, "SPX", **kwargs)
    message = str(failed.value)
    assert message.startswith(f"SPX: data.path {path!r} is shared by every symbol and does not name SPX; put {{symbol}} in it")
    setter = {"defaults": "spec defaults (", "environ": "environment (env:TMPIPE__DATA__PATH)"}[layer]
    assert f"(set by {setter}" in message
    assert "\n" not in message


def test_paths_that_name_the_symbol_pass(tmp_path):
    shared = write_spec(tmp_path, {"source": "parquet", "path": str(tmp_path / "{symbol}.parquet")})
    check(shared, "AAPL")
    check(shared, "AAPL", environ={"TMPIPE__DATA__PATH": "/data/{symbol}/bars.csv"})
    own = write_spec(tmp_path, {"source": "csv"}, symbols={"AAPL": {"data": {"path": "/data/apple.csv"}}})
    check(own, "AAPL")
    with pytest.raises(DataError, match="^MSFT: data.path"):
        check(own, "MSFT", environ={"TMPIPE__DATA__PATH": "/data/msft.csv"})


def test_yfinance_downloads_the_symbol_itself(tmp_path):
    check(write_spec(tmp_path, {"source": "yfinance"}), "AAPL")


def test_explain_warns_what_a_run_would_fail_with(tmp_path):
    from click.testing import CliRunner

    from tmpipe.cli import main

    path = write_spec(tmp_path).path
    own = CliRunner().invoke(main, ["explain", "--symbol", "SPX", "--spec", path, "--json"])
    unknown = CliRunner().invoke(main, ["explain", "--symbol", "X", "--spec", path, "--json"])
    assert own.exit_code == unknown.exit_code == 0 and own.stderr == ""
    assert unknown.stderr.startswith("warning: a run would fail: X: demo bars (sp500) are for the spec's demo_symbols (SPX)")
    assert json.loads(unknown.stdout)["config"]["data"]["source"] == "demo"
