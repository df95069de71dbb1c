"""The run summary says what failed outside the symbols, and which symbols the cap left out."""

from tmpipe.errors import DataError, error_record
from tmpipe.pipeline.summary import StageOutputs, render_table, run_failure, summarize_symbols

NO_BARS = {"train_backtest": error_record(DataError("no bars"), stage="train_backtest")}
DONE = {"train_backtest": {"test_sharpe": 1.0}, "inference": {}, "review": {}, "persist": {"action": "BUY", "confidence": 0.7}}


def test_a_resolve_error_fails_the_run_even_with_no_symbol_rows():
    summary = summarize_symbols([], mode="both", run_error="resolve_symbols: StoreError: GET http://127.0.0.1:9/api/workflow-symbols/: timed out")
    assert summary["symbols"] == [] and summary["dropped_symbols"] == []
    assert run_failure(summary) == "resolve_symbols: StoreError: GET http://127.0.0.1:9/api/workflow-symbols/: timed out"
    assert "error: resolve_symbols: StoreError: GET http://127.0.0.1:9/api/workflow-symbols/: timed out" in render_table(summary)


def test_failed_symbols_fail_the_run_and_finished_ones_do_not():
    ok = StageOutputs("AAA", DONE, {})
    broken = StageOutputs("BBB", dict.fromkeys(DONE), NO_BARS)
    assert run_failure(summarize_symbols([ok], mode="both")) is None
    summary = summarize_symbols([ok, broken], mode="both")
    assert run_failure(summary) == "1 of 2 symbols failed: BBB"
    assert summary["symbols"][1]["error"] == "train_backtest: DataError: no bars"


def test_the_table_names_dropped_symbols_and_why_nothing_ran_on_one_line_each():
    long_reason = "no symbols to run for DAG d: " + "x" * 300
    table = render_table(summarize_symbols([], mode="both", dropped_symbols=["CCC", "DDD"], no_symbols=long_reason))
    assert "dropped by the symbol cap: CCC, DDD" in table.splitlines()
    assert f"no symbols: {long_reason}" in table.splitlines()


def test_rows_name_the_model_whether_it_was_promoted_and_why_not():
    promoted = {**DONE, "train_backtest": {"model_name": "tmpipe.AAA.dqn", "model_version": "3", "promoted": True, "gate_reasons": []}}
    rejected = {"train_backtest": {"model_name": "tmpipe.BBB.dqn", "model_version": "7", "promoted": False,
                                   "gate_reasons": ["did not beat buy-and-hold: excess return -0.012", "max drawdown 0.61 > 0.5"]}}
    summary = summarize_symbols(
        [StageOutputs("AAA", promoted, {}), StageOutputs("BBB", rejected, {}), StageOutputs("CCC", {}, NO_BARS)],
        mode="train_backtest",
    )
    rows = {row["symbol"]: {key: row[key] for key in ("model_name", "model_version", "promoted", "gate_reasons")} for row in summary["symbols"]}
    assert rows == {
        "AAA": {"model_name": "tmpipe.AAA.dqn", "model_version": "3", "promoted": True, "gate_reasons": []},
        "BBB": {"model_name": "tmpipe.BBB.dqn", "model_version": "7", "promoted": False,
                "gate_reasons": ["did not beat buy-and-hold: excess return -0.012", "max drawdown 0.61 > 0.5"]},
        "CCC": {"model_name": None, "model_version": None, "promoted": None, "gate_reasons": []},
    }
    table = table_columns(render_table(summary))
    assert table["model"] == {"AAA": "v3", "BBB": "v7", "CCC": "-"}
    assert table["promoted"] == {"AAA": "yes", "BBB": "no: did not beat buy-and-hold: excess return -0.012; max drawdown 0.61 > 0.5", "CCC": "-"}


def test_long_run_ids_and_urls_are_wrapped_not_cut():
    url = "http://127.0.0.1:5000/#/experiments/123456789/runs/" + "f" * 32
    row = {**DONE, "persist": {**DONE["persist"], "mlflow_run_url": url, "mlflow_run_id": "f" * 32}}
    assert table_columns(render_table(summarize_symbols([StageOutputs("AAA", row, {})], mode="both")))["mlflow run"] == {"AAA": url}


def table_columns(text: str) -> dict[str, dict[str, str]]:
    """The rendered table's cells by column and symbol, wrapped lines joined back."""
    lines = [line for line in text.splitlines() if line.startswith(("┃", "│"))]
    headers = [cell.strip() for cell in lines[0].strip("┃").split("┃")]
    columns: dict[str, dict[str, list[str]]] = {h: {} for h in headers}
    symbol = None
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        symbol = cells[0] or symbol
        for header, cell in zip(headers, cells):
            if cell:
                columns[header].setdefault(symbol, []).append(cell)
    joiner = {"mlflow run": ""}  # a folded URL has no spaces to put back
    return {h: {sym: joiner.get(h, " ").join(parts) for sym, parts in cells.items()} for h, cells in columns.items()}
