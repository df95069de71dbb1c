"""The pipeline's stages as plain functions: resolve, train/backtest, infer, review, persist.

Each Airflow operator calls exactly one of these and returns its small reference dict to
XCom; big things (results, bundles, traces) travel through MLflow artifacts. A later stage
gets the symbol's MLflow run id (``run_id``) from the earlier stage's reference instead of
searching for the run. Everything here runs without Airflow, so it is tested directly.
"""

from __future__ import annotations

import logging
from typing import Any

from tmpipe import __version__
from tmpipe.config.resolver import ResolvedConfig, resolve_in_run, resolve_shared
from tmpipe.config.sections import ReviewConfig
from tmpipe.config.symbol_data import check_symbol_data
from tmpipe.home import tmpipe_home
from tmpipe.pipeline.context import RunContext, check_conf
from tmpipe.pipeline.modes import last_stage, stages_of
from tmpipe.pipeline.tracker import SymbolTracker
from tmpipe.pipeline.selection import (
    SymbolSelection,
    cap_named_symbols,
    handle_no_symbols,
    log_dropped,
    symbol_cap,
    warn_named_but_switched_off,
)
from tmpipe.spec.model import Spec
from tmpipe.store.base import SelectedSymbol, find_link, select_symbols
from tmpipe.store.factory import open_store
from tmpipe.store.models import ArtifactCreate
from tmpipe.symbols import validate_symbol
from tmpipe.tracking import TrackingContext, resolve_tracking_uri

log = logging.getLogger(__name__)

NOTES_MAX_CHARS = 500


def resolve_symbols(ctx: RunContext) -> SymbolSelection:
    """The run's symbols, per symbol its WebUI link layer (config, link id, notes), and those the cap drops.

    Fails the whole run, before any symbol work, on a bad conf or mode, and as the spec's
    ``symbol_selection`` says on no symbols or too many named ones.
    """
    spec = ctx.spec
    conf = check_conf(ctx.conf)
    mode = ctx.mode
    stages_of(mode)  # an unknown mode fails here, naming the valid ones
    shared = resolve_shared(spec, conf_config=conf.get("config"))
    store = open_store(shared.webui, connection_lookup=ctx.connection_lookup)
    cap, cap_source = symbol_cap(spec, conf)
    requested = [conf["symbol"]] if conf.get("symbol") else conf.get("symbols")
    no_symbols = None
    if requested:
        kept, dropped = cap_named_symbols(spec, [validate_symbol(s) for s in requested], cap, cap_source)
        known = store.list_workflow_symbols(enabled_only=False)
        selected = [find_link(known, s, spec.dag.dag_id) for s in kept]
        warn_named_but_switched_off(known, kept, spec.dag.dag_id)
    else:
        eligible = select_symbols(store.list_workflow_symbols(enabled_only=True), spec.dag.dag_id)
        selected, dropped = eligible[:cap], [s.symbol for s in eligible[cap:]]
        if not selected:
            no_symbols = handle_no_symbols(spec, store)
    log_dropped(dropped, cap, cap_source)
    log.info("mode=%s symbols=%s", mode, [s.symbol for s in selected])
    return SymbolSelection([s.symbol for s in selected], {s.symbol: _link_layer(s) for s in selected}, dropped, no_symbols)


def _link_layer(selected: SelectedSymbol) -> dict[str, Any]:
    notes = (selected.notes or "")[:NOTES_MAX_CHARS] or None
    return {"link_id": selected.link_id, "config": selected.link_config, "notes": notes}


class SymbolStage:
    """Shared set-up of the per-symbol stages: spec, mode, resolved config, MLflow run.

    A symbol whose data does not name it fails here, before any stage opens an MLflow run,
    logs or registers a model, or persists anything.
    """

    def __init__(self, ctx: RunContext, symbol: str, link: dict[str, Any] | None):
        self.ctx = ctx
        self.symbol = validate_symbol(symbol)
        self.spec: Spec = ctx.spec
        self.mode = ctx.mode
        self.link = link or {"link_id": None, "config": {}, "notes": None}
        self.config: ResolvedConfig = resolve_in_run(self.spec, self.symbol, ctx.conf.get("config"), self.link)
        check_symbol_data(self.spec, self.config)

    def tracker(self, run_id: str | None = None) -> SymbolTracker:
        """The symbol's MLflow run; ``run_id`` is the one an earlier stage handed over, if any."""
        mlflow_cfg = self.config.mlflow
        ctx = self.ctx
        context = TrackingContext(
            tracking_uri=resolve_tracking_uri(mlflow_cfg, tmpipe_home()),
            experiment=mlflow_cfg.experiment,
            dag_id=ctx.dag_id,
            dag_run_id=ctx.dag_run_id,
            symbol=self.symbol,
            mode=self.mode,
            engine_backend=self.config.trademaster.backend,
            spec_sha256=self.spec.sha256,
            project_version=__version__,
            map_index=ctx.map_index,
            try_number=ctx.try_number,
            task_url=ctx.task_url,
            run_timestamp=ctx.logical_date,
        )
        return SymbolTracker(context, self.config, run_id=run_id)


def train_backtest(ctx: RunContext, symbol: str, link: dict[str, Any] | None) -> dict[str, Any]:
    """The first stage: finds or creates the symbol's MLflow run; later stages get its id."""
    stage = SymbolStage(ctx, symbol, link)
    tracker = stage.tracker()
    with tracker.stage("train_backtest"):
        from tmpipe.engine import train_backtest as run_engine

        out_dir = ctx.work_dir(symbol) / "train_backtest"
        result = run_engine(stage.config.engine, symbol=symbol, out_dir=out_dir, progress=_log_progress(symbol))
        registration = tracker.log_training(result, out_dir)
        test = result["metrics"]["test"]
        outcome = {
            **tracker.reference(),
            "model_name": registration.get("model_name"),
            "model_version": registration.get("version"),
            "promoted": registration.get("promoted"),
            "gate_reasons": registration.get("gate", {}).get("reasons", []),
            "test_sharpe": _rounded(test["sharpe"]),
            "test_total_return": _rounded(test["total_return"]),
            "excess_return": _rounded(result["excess_return"]),
            "data_sha256": result["data_fingerprint"]["sha256"],
        }
    if last_stage(stage.mode) == "train_backtest":
        ctx.finish_work(symbol)
    return outcome


def inference(ctx: RunContext, symbol: str, link: dict[str, Any] | None, *, run_id: str | None = None) -> dict[str, Any]:
    """``run_id``: train_backtest's run (mode both); mode inference finds or creates the run."""
    stage = SymbolStage(ctx, symbol, link)
    tracker = stage.tracker(run_id)
    with tracker.stage("inference"):
        from tmpipe.engine import infer

        model_dir, model = tracker.model_for_inference(ctx.work_dir(symbol) / "model")
        result = infer(model_dir, stage.config.engine, symbol=symbol)
        tracker.log_inference(result)
        return {**tracker.reference(), **model, "action": result["action"], "as_of": result["as_of"],
                "target_position": result["target_position"]}


def review(
    ctx: RunContext, symbol: str, link: dict[str, Any] | None, *, run_id: str | None = None, api_key_resolver=None
) -> dict[str, Any]:
    stage = SymbolStage(ctx, symbol, link)
    tracker = stage.tracker(run_id)
    with tracker.stage("review"):
        from tmpipe.review import build_evidence, review_signal

        if stage.config.review.mlflow_tracing:
            tracker.trace_review_in_mlflow()
        from tmpipe.signals.service import symbol_track_record

        engine_result, inference_result = tracker.engine_outputs()
        track = symbol_track_record(stage.config.webui, symbol, stage.config.review.track_record.rolling_window,
                                    connection_lookup=ctx.connection_lookup)
        evidence = build_evidence(
            engine_result, inference_result, symbol=symbol, lineage=tracker.lineage(engine_result), notes=stage.link.get("notes"),
            track_record=track,
        )
        review_config = _replaying(stage, tracker, stage.config.review)
        spent_elsewhere, publish_spend = _spend_ledger(tracker)
        outcome = review_signal(evidence, review_config, symbol=symbol, api_key_resolver=api_key_resolver,
                                spent_elsewhere=spent_elsewhere, publish_spend=publish_spend,
                                evidence_uri=tracker.evidence_uri())
        from tmpipe.review.evidence_ref import evidence_bytes

        tracker.log_review(evidence_bytes(evidence), outcome.signal, outcome.trace)
        if outcome.recording is not None:
            from tmpipe.tracking.stage_logging import log_llm_recording

            log_llm_recording(tracker.open_run.run_id, outcome.recording, tracking_uri=tracker.tracking_uri)
        cost = outcome.trace["cost"]["usd"]
        if cost is not None:
            publish_spend(cost)
        signal = outcome.signal
        return {
            **tracker.reference(),
            "action": signal["action"],
            "confidence": signal["confidence"],
            "review_status": signal["review_status"],
            "review_cost_usd": cost,
        }


def _spend_ledger(tracker):
    """The DAG run's LLM spend in MLflow: the other symbols' ``review_cost_usd`` (in any experiment), and this
    symbol's, logged per call."""
    from tmpipe.tracking.run_identity import TAG_DAG_ID, TAG_DAG_RUN_ID
    from tmpipe.tracking.stage_logging import dag_run_review_spend, log_review_spend

    run, uri = tracker.run, tracker.tracking_uri
    tags = {TAG_DAG_ID: tracker.context.dag_id, TAG_DAG_RUN_ID: tracker.context.dag_run_id}
    return (lambda: dag_run_review_spend(uri, tags, run.run_id),
            lambda usd: log_review_spend(run.run_id, usd, tracking_uri=uri))


def _replaying(stage: SymbolStage, tracker, review_config: ReviewConfig) -> ReviewConfig:
    """With ``review.model_client.replay_dag_run_id``, the review replays that DAG run's LLM recording offline."""
    replay_of = review_config.model_client.replay_dag_run_id
    if not replay_of:
        return review_config
    from tmpipe.errors import ReviewError
    from tmpipe.tracking.run_identity import TAG_DAG_ID, TAG_DAG_RUN_ID, TAG_SYMBOL
    from tmpipe.tracking.stage_logging import find_llm_recording

    tags = {TAG_DAG_ID: stage.ctx.dag_id, TAG_DAG_RUN_ID: replay_of, TAG_SYMBOL: stage.symbol}
    path = find_llm_recording(tracker.tracking_uri, tracker.context.experiment, tags, stage.ctx.work_dir(stage.symbol) / "replay")
    if path is None:
        raise ReviewError(f"{stage.symbol}: nothing to replay: DAG run {replay_of} of {stage.ctx.dag_id} has no MLflow run "
                          f"for {stage.symbol} with review/llm_recording.json in experiment {tracker.context.experiment!r}")
    log.info("%s: replaying the LLM recording of DAG run %s (%s)", stage.symbol, replay_of, path)
    return review_config.model_copy(update={"model_client": review_config.model_client.model_copy(
        update={"provider": "replay", "replay_file": str(path)})})


def persist(ctx: RunContext, symbol: str, link: dict[str, Any] | None, *, run_id: str | None = None) -> dict[str, Any]:
    """Write ``signal`` and ``llm`` artifacts, then attach MLflow lineage; idempotent on retry.

    Publishes only a trace whose chain, signal and MLflow head tag agree, so the WebUI copies
    stay an independent record of what the review wrote.
    """
    stage = SymbolStage(ctx, symbol, link)
    tracker = stage.tracker(run_id)
    with tracker.stage("persist"):
        signal, trace = tracker.review_outputs()
        _check_review_outputs(symbol, signal, trace, tracker)
        store = open_store(stage.config.webui, connection_lookup=ctx.connection_lookup)
        ids = {}
        for artifact_type, content in (("signal", signal), ("llm", trace)):
            saved = store.save_artifact(
                ArtifactCreate(dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id, symbol=symbol, artifact_type=artifact_type, content=content)
            )
            run = tracker.reference()
            store.set_lineage(saved.id, run["mlflow_run_id"], run["mlflow_experiment_id"])
            ids[f"{artifact_type}_artifact_id"] = saved.id
        outcome = {**tracker.reference(), **ids, "action": signal["action"], "confidence": signal["confidence"]}
    ctx.finish_work(symbol)
    return outcome


def _check_review_outputs(symbol: str, signal: dict[str, Any], trace: dict[str, Any], tracker: SymbolTracker) -> None:
    from tmpipe.errors import ReviewError
    from tmpipe.review.anchors import mlflow_anchor, signal_anchor, verify_anchored
    from tmpipe.review.evidence_ref import check_evidence
    from tmpipe.review.trace import hmac_key

    anchors = [signal_anchor(signal, "review/signal.json"), mlflow_anchor(tracker.open_run.run_id, tracker.tracking_uri)]
    result = verify_anchored(trace, anchors, hmac_key())
    problems = list(result.problems)
    if result.ok:  # the trace is intact: the evidence pack it references must be too
        problems = check_evidence(trace["evidence"], tracking_uri=tracker.tracking_uri).problems
    if problems:
        raise ReviewError(f"{symbol}: not publishing review/trace.json of MLflow run {tracker.open_run.run_id}: "
                          + "; ".join(problems), symbol=symbol, stage="persist")


def _rounded(value: float | None) -> float | None:
    """Metrics may be undefined (a policy that never trades has no Sharpe)."""
    return None if value is None else round(value, 4)


def _log_progress(symbol: str):
    """Per-epoch progress lines, e.g. ``SPX epoch 3: loss=0.0123 valid_return=-0.0210``."""

    def report(event: dict[str, Any]) -> None:
        if event.get("epoch") is None:
            return
        figures = " ".join(
            f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in event.items()
            if key != "epoch" and value is not None
        )
        log.info("%s epoch %s: %s", symbol, event["epoch"], figures)

    return report
