"""Backfill on intraday bars: each signal is for its own bar, and the backfill has an MLflow run the signals and scores link to."""

from __future__ import annotations

import json

import numpy as np
import yaml

from tmpipe.config.resolver import resolve
from tmpipe.config.sections import DataConfig
from tmpipe.engine.bar_validation import iso
from tmpipe.engine.data import load_dataset
from tmpipe.review.evidence_ref import read_evidence
from tmpipe.signals.backfill import BACKFILL_KIND, SIGNALS_ARTIFACT, backfill
from tmpipe.signals.service import score_symbol
from tmpipe.spec.loader import load_spec
from tmpipe.store.sqlite import SqliteArtifactStore
from tmpipe.tracking import client_for, get_or_create_experiment, resolve_tracking_uri
from tmpipe.tracking.run_identity import TAG_DAG_ID, TAG_DAG_RUN_ID, TAG_SYMBOL, tags_filter

DAG_ID = "trademaster_autogen_pipeline_workflow"
HOURS = [f"{hour:02d}:00" for hour in range(10, 17)]  # 7 bars a day


def _hourly_bars(path, days: int = 50) -> None:
    dates = np.busday_offset(np.datetime64("2024-01-01"), np.arange(days), roll="forward")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(7).normal(0, 0.003, days * len(HOURS))))
    lines = ["date,open,high,low,close,volume"]
    for n, (day, hour) in enumerate((d, h) for d in dates for h in HOURS):
        price = close[n]
        lines.append(f"{day}T{hour}:00,{price:.4f},{price * 1.001:.4f},{price * 0.999:.4f},{price:.4f},1000")
    path.write_text("\n".join(lines) + "\n")


def _spec(tmp_path):
    bars = tmp_path / "hourly.csv"
    _hourly_bars(bars)
    spec = {
        "schema_version": 1,
        "dag": {"dag_id": DAG_ID, "retries": 0},
        "demo_symbols": [],
        "defaults": {
            "data": {"source": "csv", "path": str(bars), "lookback": 5},
            "trademaster": {"epochs": 1, "hidden_size": 16, "batch_size": 32, "torch_threads": 1},
            "review": {"horizon": "1d"},
            "mlflow": {"experiment": "intraday_backfill"},
        },
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_spec(path)


def test_intraday_backfill_signals_are_bar_exact_and_linked_to_the_backfills_mlflow_run(tmpipe_home, tmp_path):
    spec = _spec(tmp_path)
    store = SqliteArtifactStore(tmpipe_home / "webui.db")
    done = backfill(spec, "AAA", store, max_signals=3)

    config = resolve(spec, "AAA")
    dataset = load_dataset(config.data, "AAA")
    window = dataset.splits["test"].own["date"]
    before = dataset.frame["date"][dataset.frame["date"] < window[0]]
    expected = [iso(stamp) for stamp in window[::7][:3]]  # "1d" is 7 hourly bars
    assert all(not stamp.endswith("16:00:00") for stamp in expected)  # not the day's last bar
    signals = store.list_artifacts(symbol="AAA", artifact_type="signal")
    assert [s.content["as_of"] for s in signals] == expected
    assert [s.dag_run_id for s in signals] == [f"backfill__{stamp}" for stamp in expected]
    assert done.trained_until == iso(before[-1]) and done.trained_until < expected[0]

    # One MLflow run for the backfill, in the symbol's experiment, holding the signals.
    uri = resolve_tracking_uri(config.mlflow, tmpipe_home)
    client = client_for(uri)
    run = client.get_run(done.mlflow_run_id)
    assert run.info.experiment_id == get_or_create_experiment(uri, "intraday_backfill")
    assert run.data.tags["tmpipe.kind"] == BACKFILL_KIND and run.data.tags[TAG_SYMBOL] == "AAA"
    assert TAG_DAG_ID not in run.data.tags and TAG_DAG_RUN_ID not in run.data.tags
    assert run.data.params["backfill.signals"] == "3" and run.info.status == "FINISHED"
    with open(client.download_artifacts(done.mlflow_run_id, SIGNALS_ARTIFACT, str(tmp_path)), encoding="utf-8") as kept:
        assert [s["as_of"] for s in json.load(kept)] == expected
    # A DAG run's lookup of its symbol's run by the identity tags does not find it.
    for signal in signals:
        identity = {TAG_DAG_ID: DAG_ID, TAG_DAG_RUN_ID: signal.dag_run_id, TAG_SYMBOL: "AAA"}
        assert client.search_runs([run.info.experiment_id], filter_string=tags_filter(identity)) == []

    # The signal and llm artifacts, and the scores of the signals, link to that run.
    linked = store.list_artifacts(symbol="AAA")
    assert {(a.artifact_type, a.mlflow_run_id) for a in linked} == {("signal", done.mlflow_run_id), ("llm", done.mlflow_run_id)}
    assert {s.content["mlflow_run_id"] for s in signals} == {done.mlflow_run_id}
    # Each llm artifact references its evidence pack, stored once in that run.
    for trace in store.list_artifacts(symbol="AAA", artifact_type="llm"):
        reference = trace.content["evidence"]
        assert reference["uri"] == f"runs:/{done.mlflow_run_id}/backfill/evidence/{trace.dag_run_id.replace(':', '_')}.json"
        pack = read_evidence(reference, tracking_uri=uri)
        assert pack["lineage"]["dag_run_id"] == trace.dag_run_id and pack["lineage"]["mlflow_run_id"] == done.mlflow_run_id
    scorer = {"dag_id": "tmpipe-cli", "dag_run_id": "cli__test"}
    scored = score_symbol(spec, "AAA", store, scored_by=scorer, log_mlflow=False)
    assert scored.newly_graded == 3
    for score in store.list_artifacts(symbol="AAA", artifact_type="signal_score"):
        assert (score.content["signal"]["mlflow_run_id"], score.content["signal"]["mlflow_experiment_id"]) == (
            done.mlflow_run_id, run.info.experiment_id)


def test_data_end_cuts_intraday_bars_at_a_bar_or_at_the_end_of_a_day(tmp_path):
    bars = tmp_path / "hourly.csv"
    _hourly_bars(bars)
    config = {"source": "csv", "path": str(bars), "lookback": 5, "valid_ratio": 0.15, "test_ratio": 0.15,
              "start": None, "end": None, "bars_per_year": None}
    last = lambda end: iso(load_dataset(DataConfig.from_values({**config, "end": end}), "AAA").frame["date"][-1])
    assert last("2024-02-01T12:00:00") == "2024-02-01T12:00:00"
    assert last("2024-02-01 12:00") == "2024-02-01T12:00:00"
    assert last("2024-02-01") == "2024-02-01T16:00:00"  # a day keeps all of its bars
