"""enable_mlflow_tracing() with mlflow 3 and autogen-agentchat 0.7.5, against a SQLite tracking store."""

from __future__ import annotations

import pytest

from tmpipe.review import enable_mlflow_tracing, review_signal, verify_trace


@pytest.mark.slow
def test_review_is_traced_in_mlflow_as_one_trace(tmp_path, evidence, review_config, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # set_experiment exports MLFLOW_EXPERIMENT_ID for subprocesses; monkeypatch owning the key first undoes that too.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "0")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        assert enable_mlflow_tracing() is True
        mlflow.set_experiment("review-tracing")
        with mlflow.start_run():
            outcome = review_signal(evidence, review_config, symbol="AAPL")
        mlflow.flush_trace_async_logging()
        traces = mlflow.search_traces(return_type="list")
    finally:
        enable_mlflow_tracing(False)
        mlflow.set_tracking_uri(None)
    assert verify_trace(outcome.trace).ok
    assert len(traces) == 1
    names = [span.name for span in traces[0].data.spans]
    assert names[0] == "tmpipe.review AAPL"
    assert names.count("RulesChatCompletionClient.create") == 3
