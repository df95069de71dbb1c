"""The run summary says what failed outside the symbols, and which symbols the cap left out."""

from tmpipe.pipeline.summary import StageOutputs, render_table, run_failure, summarize_symbols

DONE = {"train_backtest": {"test_sharpe": 1.0}, "inference": {}, "review": {}, "persist": {"action": "BUY", "confidence": 0.7}}


def test_a_resolve_error_fails_the_run_even_with_no_symbol_rows():
    summary = summarize_symbols([], mode="both", run_error="resolve_symbols: StoreError: GET http://127.0.0.1:9/api/workflow-symbols/: timed out")
    assert summary["symbols"] == [] and summary["dropped_symbols"] == []
    assert run_failure(summary) == "resolve_symbols: StoreError: GET http://127.0.0.1:9/api/workflow-symbols/: timed out"
    assert "error: resolve_symbols: StoreError: GET http://127.0.0.1:9/api/workflow-symbols/: timed out" in render_table(summary)


def test_failed_symbols_fail_the_run_and_finished_ones_do_not():
    ok = StageOutputs("AAA", DONE, {})
    broken = StageOutputs("BBB", dict.fromkeys(DONE), {"train_backtest": "DataError: no bars"})
    assert run_failure(summarize_symbols([ok], mode="both")) is None
    assert run_failure(summarize_symbols([ok, broken], mode="both")) == "1 of 2 symbols failed: BBB"


def test_the_table_names_dropped_symbols_and_why_nothing_ran_on_one_line_each():
    long_reason = "no symbols to run for DAG d: " + "x" * 300
    table = render_table(summarize_symbols([], mode="both", dropped_symbols=["CCC", "DDD"], no_symbols=long_reason))
    assert "dropped by the symbol cap: CCC, DDD" in table.splitlines()
    assert f"no symbols: {long_reason}" in table.splitlines()
