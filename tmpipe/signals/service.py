"""Grading a symbol's persisted signals: read them from the WebUI store, write one signal_score each.

A score is written under the scoring run's identity (its dag_id and dag_run_id, also in
``content.scored_by``) and names the graded signal in ``graded_signal_id``; its MLflow lineage is
the scoring run's ``signal_scores`` run, and ``content.signal`` holds the graded signal's DAG run
and MLflow run. A signal is graded once: the store keeps one score per graded signal and refuses
another run's (409), so a signal with a score is skipped, and a retried write changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from tmpipe.config.resolver import ResolvedConfig, resolve, resolve_in_run
from tmpipe.config.sections import DataConfig, WebuiConfig
from tmpipe.engine.environment import cost_rate
from tmpipe.signals.scoring import PriceSeries, grade, track_record
from tmpipe.spec.model import Spec
from tmpipe.store.base import ArtifactStore
from tmpipe.store.models import Artifact, ArtifactCreate
from tmpipe.symbols import validate_symbol

log = logging.getLogger(__name__)
SCORE = "signal_score"
METRIC_PREFIX = "signals."


@dataclass(frozen=True)
class SymbolScores:
    """What one scoring pass did for a symbol, and its track record afterwards."""

    symbol: str
    newly_graded: int
    pending: int
    record: dict
    mlflow_run_id: str | None


def load_series(data_config: DataConfig, symbol: str) -> PriceSeries:
    """All of the symbol's bars the data source holds now."""
    from tmpipe.engine.data import load_dataset

    dataset = load_dataset(data_config, symbol)
    return PriceSeries(dataset.frame["date"].astype("datetime64[ns]"), np.asarray(dataset.frame["close"], dtype=float),
                       dataset.bars_per_year)


def graded_scores(store: ArtifactStore, symbol: str) -> list[dict]:
    return [a.content for a in store.list_artifacts(symbol=symbol, artifact_type=SCORE)]


def graded_signal_id(score: Artifact) -> int:
    """The signal artifact a score grades (a score written before graded_signal_id names it in its content only)."""
    return score.graded_signal_id if score.graded_signal_id is not None else score.content["signal"]["artifact_id"]


def score_symbol(spec: Spec, symbol: str, store: ArtifactStore, *, scored_by: dict, graded_at: datetime | None = None,
                 series_loader: Callable[[DataConfig, str], PriceSeries] = load_series, log_mlflow: bool = True,
                 config: ResolvedConfig | None = None) -> SymbolScores:
    """Grade every signal of ``symbol`` whose horizon has elapsed in the data known at ``graded_at`` (now).

    ``config`` is the symbol's resolved config (data, costs, window, MLflow); a DAG run passes the
    one its stages used (with dag_run.conf and the WebUI link); without it, the spec's layers.
    """
    symbol = validate_symbol(symbol)
    config = config or resolve(spec, symbol)
    graded_at = graded_at or datetime.now(timezone.utc)
    stamp = np.datetime64(graded_at.astimezone(timezone.utc).replace(tzinfo=None), "ns")
    series = series_loader(config.data, symbol).known_at(stamp)
    costs = cost_rate(config.trademaster)
    done = {graded_signal_id(a) for a in store.list_artifacts(symbol=symbol, artifact_type=SCORE)}
    saved: list[int] = []
    pending = 0
    for signal in store.list_artifacts(symbol=symbol, artifact_type="signal"):
        if signal.id in done:
            continue
        score = grade(signal.content, series, cost_rate=costs)
        if score is None:
            pending += 1
            continue
        score_id = _save_score(store, signal, score, scored_by, graded_at)
        if score_id is not None:
            saved.append(score_id)
    newly = len(saved)
    record = track_record(graded_scores(store, symbol), window=spec_window(config))
    run_id = None
    if log_mlflow and record["graded"]:
        run_id, experiment_id = log_record(config, symbol, record, scored_by)
        # This run's scores link to its MLflow run (those of a retried try that stopped before too).
        for mine in store.list_artifacts(dag_id=scored_by["dag_id"], dag_run_id=scored_by["dag_run_id"], symbol=symbol,
                                         artifact_type=SCORE):
            if mine.mlflow_run_id is None:
                store.set_lineage(mine.id, run_id, experiment_id)
    log.info("%s: graded %d signal(s), %d waiting for their horizon; hit rate %s over %d", symbol, newly, pending,
             _fmt(record["hit_rate"]), record["directional"])
    return SymbolScores(symbol, newly, pending, record, run_id)


def symbol_track_record(webui: WebuiConfig, symbol: str, window: int,
                        connection_lookup: Callable[[str], tuple[str | None, str | None]] | None = None) -> dict | None:
    """The symbol's track record for its evidence pack; None when nothing is graded or the store cannot say."""
    from tmpipe.errors import StoreError
    from tmpipe.store.factory import open_store

    try:
        scores = graded_scores(open_store(webui, connection_lookup=connection_lookup), symbol)
    except StoreError as exc:
        log.warning("%s: reviewing without the track record, the WebUI store did not give it: %s", symbol, exc)
        return None
    return track_record(scores, window=window) if scores else None


def spec_window(config: ResolvedConfig) -> int:
    return config.review.track_record.rolling_window


def _save_score(store: ArtifactStore, signal: Artifact, score: dict, scored_by: dict, graded_at: datetime) -> int | None:
    """The new score's artifact id; None when another scoring run graded the signal first."""
    from tmpipe.errors import StoreError
    from tmpipe.store.artifact_validation import CONFLICT

    content = {
        "schema_version": 1, "kind": SCORE, "symbol": signal.symbol,
        "signal": {"artifact_id": signal.id, "dag_id": signal.dag_id, "dag_run_id": signal.dag_run_id,
                   "mlflow_run_id": signal.mlflow_run_id, "mlflow_experiment_id": signal.mlflow_experiment_id,
                   "trace_head_sha256": signal.content.get("trace_head_sha256")},
        "scored_by": dict(scored_by),
        "graded_at": graded_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        **score,
    }
    try:
        saved = store.save_artifact(ArtifactCreate(dag_id=scored_by["dag_id"], dag_run_id=scored_by["dag_run_id"],
                                                   symbol=signal.symbol, artifact_type=SCORE, content=content,
                                                   graded_signal_id=signal.id))
    except StoreError as exc:
        if exc.status != CONFLICT:
            raise
        log.info("%s: signal artifact %d was graded by another run meanwhile: %s", signal.symbol, signal.id, exc)
        return None
    return saved.id


def log_record(config: ResolvedConfig, symbol: str, record: dict, scored_by: dict) -> tuple[str, str]:
    """The track record as metrics of one MLflow run per (scoring run, symbol) in the symbol's experiment."""
    from mlflow.entities import Metric

    from tmpipe.home import tmpipe_home
    from tmpipe.tracking import client_for, get_or_create_experiment, resolve_tracking_uri
    from tmpipe.tracking.run_identity import tags_filter

    mlflow_cfg = config.mlflow
    uri = resolve_tracking_uri(mlflow_cfg, tmpipe_home())
    client = client_for(uri)
    experiment_id = get_or_create_experiment(uri, mlflow_cfg.experiment)
    tags = {"tmpipe.kind": "signal_scores", "symbol": symbol, "tmpipe.scored_by.dag_id": scored_by["dag_id"],
            "tmpipe.scored_by.dag_run_id": scored_by["dag_run_id"]}
    found = client.search_runs([experiment_id], filter_string=tags_filter(tags), max_results=1)
    run = found[0] if found else client.create_run(experiment_id, run_name=f"{symbol}-signal-scores", tags=tags)
    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    metrics = [Metric(METRIC_PREFIX + key, float(value), now, 0) for key, value in record.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None]
    client.log_batch(run.info.run_id, metrics=metrics)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id, experiment_id


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def score_run(spec: Spec, symbols: list[str], *, dag_id: str, dag_run_id: str, webui: WebuiConfig,
              connection_lookup: Callable[[str], tuple[str | None, str | None]] | None = None,
              conf_config: dict[str, Any] | None = None, links: dict[str, dict[str, Any]] | None = None,
              series_loader: Callable[[DataConfig, str], PriceSeries] = load_series) -> dict[str, Any]:
    """The scoring step of a DAG run: grade the run's symbols' signals; one symbol's error does not stop another.

    Each symbol is graded with the config its stages resolved in this run: the spec's layers,
    ``conf_config`` (dag_run.conf's ``config``) and its WebUI link layer from ``links``
    (resolve_symbols' ``{symbol: {link_id, config, notes}}``), so data and costs are the run's.
    Returns a small, XCom-sized summary: per symbol what was graded and its record, and the errors.
    """
    from tmpipe.errors import TmpipeError
    from tmpipe.store.factory import open_store

    store = open_store(webui, connection_lookup=connection_lookup)
    scorer = {"dag_id": dag_id, "dag_run_id": dag_run_id}
    rows: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for symbol in symbols:
        try:
            config = resolve_in_run(spec, symbol, conf_config, (links or {}).get(symbol))
            done = score_symbol(spec, symbol, store, scored_by=scorer, config=config, series_loader=series_loader)
        except TmpipeError as exc:
            errors[symbol] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            log.warning("%s: signals not scored: %s", symbol, errors[symbol])
            continue
        rows[symbol] = {"newly_graded": done.newly_graded, "pending": done.pending,
                        **{key: done.record[key] for key in ("graded", "hit_rate", "ic", "cumulative_pnl", "buy_and_hold")}}
    return {"graded": sum(row["newly_graded"] for row in rows.values()), "symbols": rows, "errors": errors}
