"""The MLflow side of one symbol's stages: the shared run, what each stage logs and reads back.

Tasks of one symbol may run in different processes or on different workers, so everything
a later stage needs (engine result, model bundle, signal, trace) is read back from the run,
whose id the earlier stage handed over in XCom.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterator

from tmpipe.config.resolver import ResolvedConfig
from tmpipe.pipeline.modes import first_stage, last_stage, trains
from tmpipe.tracking import (
    RunRef,
    TrackingContext,
    client_for,
    load_promoted_model,
    log_config,
    log_inference,
    log_review,
    log_train_backtest,
    register_and_promote,
    run_url,
    set_tags,
    stage_run,
)
from tmpipe.tracking.registry import download_run_bundle
from tmpipe.tracking.stage_logging import (
    ENGINE_RESULT_ARTIFACT,
    EVIDENCE_ARTIFACT,
    INFERENCE_ARTIFACT,
    MODEL_ARTIFACT_DIR,
    REVIEW_ARTIFACTS,
)

log = logging.getLogger(__name__)

STAGE_TAG = "tmpipe.stage"  # the stage in progress, or the last one that ran
# In inference mode the backtest behind the promoted model is copied here for the review.
PROMOTED_RESULT_ARTIFACT = "engine/promoted_result.json"


class SymbolTracker:
    """One symbol's MLflow run across its stages.

    ``context`` says whose run it is (DAG run, symbol, mode, tracking URI); ``config`` is the
    symbol's resolved config, whose ``mlflow`` and ``trademaster`` sections name the registry
    and the agent; ``run_id`` is the run an earlier stage handed over (None: find or create it).
    """

    def __init__(self, context: TrackingContext, config: ResolvedConfig, *, run_id: str | None = None):
        self.context = context
        self.tracking_uri = context.tracking_uri
        self.config = config
        self.mlflow_cfg = config.mlflow
        self.agent = config.trademaster.agent
        self.handed_over_run_id = run_id
        self.run: RunRef | None = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[RunRef]:
        """Inside the symbol's run; the run ends FAILED on error, FINISHED after the mode's last stage.

        The mode's first stage logs the resolved config, once per run.
        """
        mode = self.context.mode
        with stage_run(self.context, last_stage=name == last_stage(mode), run_id=self.handed_over_run_id,
                       tags={STAGE_TAG: name}) as run:
            self.run = run
            log.info("%s %s: MLflow run %s (mode %s)", self.context.symbol, name, run.run_id, mode)
            if name == first_stage(mode):
                log_config(run.run_id, self.config.values, _provenance(self.config), tracking_uri=self.tracking_uri)
            yield run

    @property
    def open_run(self) -> RunRef:
        """The run of the stage in progress: every method below is called inside ``stage``."""
        if self.run is None:
            raise RuntimeError(f"{self.context.symbol}: the MLflow run is opened by SymbolTracker.stage")
        return self.run

    def reference(self) -> dict[str, Any]:
        return {
            "mlflow_run_id": self.open_run.run_id,
            "mlflow_experiment_id": self.open_run.experiment_id,
            "mlflow_run_url": run_url(self.tracking_uri, self.open_run.experiment_id, self.open_run.run_id),
        }

    def log_training(self, result: dict[str, Any], out_dir: Path) -> dict[str, Any]:
        log_train_backtest(self.open_run.run_id, result, out_dir, tracking_uri=self.tracking_uri)
        return register_and_promote(
            self.open_run.run_id,
            self.context.symbol,
            result["agent"],
            result,
            self.mlflow_cfg.promotion,
            self.mlflow_cfg.registered_model_prefix,
            tracking_uri=self.tracking_uri,
        )

    def model_for_inference(self, dest: Path) -> tuple[Path, dict[str, Any]]:
        """Mode both: this run's own model. Mode inference: the symbol's promoted model.

        Also returns, for the summary, which registered version inferred (mode inference only:
        in mode both train_backtest's row already says it).
        """
        if trains(self.context.mode):
            return download_run_bundle(self.tracking_uri, self.open_run.run_id, dest), {}
        promoted = load_promoted_model(
            self.tracking_uri,
            self.mlflow_cfg.registered_model_prefix,
            self.context.symbol,
            self.agent,
            self.mlflow_cfg.promotion.alias,
            dest,
        )
        self._log_json(promoted.engine_result, PROMOTED_RESULT_ARTIFACT)
        set_tags(
            self.tracking_uri,
            self.open_run.run_id,
            {"inference.model_uri": promoted.model_uri, "inference.model_name": promoted.model_name,
             "inference.model_version": promoted.version, "inference.model_run_id": promoted.run_id},
        )
        return promoted.model_dir, {"model_name": promoted.model_name, "model_version": promoted.version,
                                    "promoted": True, "gate_reasons": []}

    def log_inference(self, result: dict[str, Any]) -> None:
        log_inference(self.open_run.run_id, result, tracking_uri=self.tracking_uri)

    def engine_outputs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        engine_artifact = ENGINE_RESULT_ARTIFACT if trains(self.context.mode) else PROMOTED_RESULT_ARTIFACT
        return self._read_json(engine_artifact), self._read_json(INFERENCE_ARTIFACT)

    def lineage(self, engine_result: dict[str, Any]) -> dict[str, Any]:
        run = self.client_run_tags()
        return {
            "dag_id": self.context.dag_id,
            "dag_run_id": self.context.dag_run_id,
            "mlflow_run_id": self.open_run.run_id,
            "mlflow_experiment_id": self.open_run.experiment_id,
            "model_uri": run.get("inference.model_uri") or f"runs:/{self.open_run.run_id}/{MODEL_ARTIFACT_DIR}",
            "model_version": _pinned_version(run),
            "data_sha256": engine_result.get("data_fingerprint", {}).get("sha256"),
            "mlflow_run_url": self.reference()["mlflow_run_url"],
        }

    def client_run_tags(self) -> dict[str, str]:
        return client_for(self.tracking_uri).get_run(self.open_run.run_id).data.tags

    def trace_review_in_mlflow(self) -> None:
        """Send the review's MLflow traces (autolog) to this symbol's experiment."""
        import mlflow

        from tmpipe.review import enable_mlflow_tracing

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(experiment_id=self.open_run.experiment_id)
        if not enable_mlflow_tracing():
            log.warning("%s review: MLflow tracing unavailable; the llm artifact is still written", self.context.symbol)

    def evidence_uri(self) -> str:
        """Where this run stores the review's evidence pack, as the trace references it."""
        from tmpipe.review.evidence_ref import run_artifact_uri

        return run_artifact_uri(self.open_run.run_id, EVIDENCE_ARTIFACT)

    def log_review(self, evidence: bytes, signal: dict[str, Any], trace: dict[str, Any]) -> None:
        """``evidence``: the pack's canonical bytes, the one stored copy the trace references."""
        log_review(self.open_run.run_id, evidence, signal, trace, tracking_uri=self.tracking_uri)

    def review_outputs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        _, signal_artifact, trace_artifact = REVIEW_ARTIFACTS
        return self._read_json(signal_artifact), self._read_json(trace_artifact)

    def _read_json(self, artifact: str) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="tmpipe-read-") as scratch:
            local = client_for(self.tracking_uri).download_artifacts(self.open_run.run_id, artifact, scratch)
            return json.loads(Path(local).read_text(encoding="utf-8"))

    def _log_json(self, payload: dict[str, Any], artifact: str) -> None:
        client_for(self.tracking_uri).log_dict(self.open_run.run_id, payload, artifact)


def _pinned_version(tags: dict[str, str]) -> str | None:
    """``models:/<name>/<version>`` of the model that inferred: the promoted one (mode inference),
    else the version this run registered; an alias such as ``@champion`` moves, a version does not."""
    for name_tag, version_tag in (("inference.model_name", "inference.model_version"), ("registry.model_name", "registry.version")):
        if tags.get(name_tag) and tags.get(version_tag):
            return f"models:/{tags[name_tag]}/{tags[version_tag]}"
    return None


def _provenance(config: ResolvedConfig) -> dict[str, str]:
    return {key: str(origin) for key, origin in config.provenance.items()}
