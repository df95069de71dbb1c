"""Log each pipeline stage's output into the symbol's run.

Every function is safe to run again on the same run (a retried task): params already logged
are left alone, metric points already present are not duplicated, artifacts are overwritten
with the same content at the same paths.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmpipe.tracking.run_identity import TAG_TRACE_HEAD
from tmpipe.tracking.params import loggable_params, provenance_document
from tmpipe.tracking.retry import with_retry
from tmpipe.tracking.runs import _set_tags, client_for

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CONFIG_ARTIFACT = "config/resolved_config.yaml"
ENGINE_RESULT_ARTIFACT = "engine/result.json"
EQUITY_CSV_ARTIFACT_DIR = "backtest"
MODEL_ARTIFACT_DIR = "model"
INFERENCE_ARTIFACT = "inference/result.json"
EVIDENCE_ARTIFACT = "review/evidence.json"  # the one stored copy of the pack; traces reference it
REVIEW_ARTIFACTS = (EVIDENCE_ARTIFACT, "review/signal.json", "review/trace.json")

CURVE_KEYS = ("loss", "train_return", "valid_return", "valid_sharpe")
CURVE_PREFIX = "epoch/"  # "epoch/valid_sharpe" must not collide with the chosen model's valid_sharpe
METRIC_PREFIXES = {"valid": "valid_", "test": "test_", "buy_and_hold": "bh_"}
MODEL_REQUIREMENTS = ("tmpipe", "mlflow", "pandas", "numpy")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _same(a: float | None, b: float) -> bool:
    return a is not None and (a == b or (math.isnan(a) and math.isnan(b)))


def _log_metrics_once(
    client: MlflowClient,
    run_id: str,
    scalars: Mapping[str, Any],
    curves: Mapping[str, list[tuple[int, Any]]] | None = None,
) -> int:
    """Log scalars (step 0) and curves (step = epoch), skipping points already recorded."""
    from mlflow.entities import Metric
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH

    now = int(time.time() * 1000)
    latest = client.get_run(run_id).data.metrics
    batch = []
    for key, raw in scalars.items():
        value = _number(raw)
        if value is not None and not _same(latest.get(key), value):
            batch.append(Metric(key, value, now, 0))
    for key, points in (curves or {}).items():
        history = client.get_metric_history(run_id, key) if key in latest else []
        recorded = {(m.step, m.value) for m in history}
        for step, raw in points:
            value = _number(raw)
            if value is not None and (step, value) not in recorded:
                batch.append(Metric(key, value, now, int(step)))
    for start in range(0, len(batch), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=batch[start : start + MAX_METRICS_PER_BATCH])
    return len(batch)


def _log_json(client: MlflowClient, run_id: str, payload: Any, artifact_file: str) -> None:
    client.log_text(run_id, json.dumps(payload, indent=2, sort_keys=True, default=str), artifact_file)


def _log_bytes(client: MlflowClient, run_id: str, data: bytes, artifact_file: str) -> None:
    """``data`` as the run's ``artifact_file``, byte for byte."""
    directory, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="tmpipe-artifact-") as scratch:
        local = Path(scratch) / name
        local.write_bytes(data)
        client.log_artifact(run_id, str(local), directory or None)


@with_retry("log config")
def log_config(
    run_id: str, resolved_config: Mapping, provenance: Mapping, *, tracking_uri: str
) -> dict[str, str]:
    """Flattened params (no secrets) and ``config/resolved_config.yaml`` with provenance.

    MLflow forbids changing a param; a key already logged with another value (the config
    changed between tries) keeps its first value, is reported in a warning and in the
    returned dict, and the YAML artifact shows the current value.
    """
    import yaml
    from mlflow.entities import Param
    from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH

    client = client_for(tracking_uri)
    existing = client.get_run(run_id).data.params
    params = loggable_params(resolved_config)
    new = [Param(k, v) for k, v in params.items() if k not in existing]
    conflicts = {k: v for k, v in params.items() if k in existing and existing[k] != v}
    if conflicts:
        log.warning("run %s keeps earlier values of params %s", run_id, sorted(conflicts))
    for start in range(0, len(new), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=new[start : start + MAX_PARAMS_TAGS_PER_BATCH])
    document = provenance_document(resolved_config, provenance)
    # libyaml's emitter when PyYAML has it (the same YAML, several times faster than the pure-Python one).
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    client.log_text(run_id, yaml.dump(document, Dumper=dumper, sort_keys=True), CONFIG_ARTIFACT)
    return conflicts


def _requirements() -> list[str]:
    pins = []
    for package in MODEL_REQUIREMENTS:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def _fingerprint_tags(engine_result: Mapping) -> dict[str, Any]:
    fingerprint = engine_result.get("data_fingerprint") or {}
    return {f"data.{k}": fingerprint.get(k) for k in ("sha256", "first_timestamp", "last_timestamp", "rows")}


def train_backtest_metrics(engine_result: Mapping) -> dict[str, Any]:
    """``valid_*``, ``test_*``, ``bh_*`` metrics, the pooled walk-forward report (``oos_*``), the
    baselines (``baseline_<name>_*``), the skill test, excess return and model choice."""
    metrics: dict[str, Any] = {}
    for split, prefix in METRIC_PREFIXES.items():
        for name, value in (engine_result.get("metrics", {}).get(split) or {}).items():
            metrics[f"{prefix}{name}"] = value
    metrics["excess_return"] = engine_result.get("excess_return")
    for name, value in ((engine_result.get("report") or {}).get("pooled") or {}).items():
        metrics[f"oos_{name}"] = value
    for baseline, report in (engine_result.get("baselines") or {}).items():
        for name in ("sharpe", "total_return", "max_drawdown"):
            metrics[f"baseline_{baseline}_{name}"] = report["pooled"][name]
    skill = engine_result.get("skill")
    if skill:
        metrics["skill_p_value"] = skill["p_value"]
        metrics["deflated_sharpe_ratio"] = skill["deflated_sharpe"]["value"]
        for baseline, difference in skill["sharpe_difference"]["baselines"].items():
            metrics[f"sharpe_minus_{baseline}"] = difference["estimate"]
    metrics["chosen_epoch"] = engine_result.get("chosen_epoch")
    metrics["wall_time_seconds"] = engine_result.get("wall_time_seconds")
    return metrics


@with_retry("log train/backtest")
def log_train_backtest(
    run_id: str, engine_result: Mapping, out_dir: str | Path, *, tracking_uri: str
) -> dict[str, str]:
    """Curves, metrics, equity CSV + PNG, ``engine/result.json`` and the pyfunc model.

    Curves are ``epoch/<key>`` at step = epoch; metrics ``valid_*``, ``test_*``, ``bh_*``.
    Artifacts: ``backtest/equity_curve.csv|png``, ``engine/result.json`` and ``model/`` (a
    pyfunc model; the engine bundle is kept verbatim under ``model/artifacts/bundle``).
    Returns artifact references small enough for XCom.
    """
    from tmpipe.tracking.bundle_model import save_bundle_model
    from tmpipe.tracking.plots import plot_equity_curve

    client = client_for(tracking_uri)
    epochs = engine_result.get("epochs") or []
    curves = {f"{CURVE_PREFIX}{key}": [(e["epoch"], e.get(key)) for e in epochs] for key in CURVE_KEYS}
    _log_metrics_once(client, run_id, train_backtest_metrics(engine_result), curves)

    equity_csv = Path(engine_result["equity_curve_path"])
    symbol = engine_result.get("symbol", "")
    plot = plot_equity_curve(
        equity_csv,
        Path(out_dir) / "equity_curve.png",
        title=f"{symbol} {engine_result.get('agent', '')}: strategy vs baselines, out-of-sample test windows",
    )
    client.log_artifact(run_id, str(equity_csv), EQUITY_CSV_ARTIFACT_DIR)
    client.log_artifact(run_id, str(plot), EQUITY_CSV_ARTIFACT_DIR)
    _log_json(client, run_id, dict(engine_result), ENGINE_RESULT_ARTIFACT)
    with tempfile.TemporaryDirectory(prefix="tmpipe-model-") as scratch:
        model_path = save_bundle_model(
            engine_result["model_dir"], Path(scratch) / "model", requirements=_requirements()
        )
        client.log_artifacts(run_id, str(model_path), MODEL_ARTIFACT_DIR)

    last_action = engine_result.get("last_action") or {}
    _set_tags(
        client,
        run_id,
        {
            **_fingerprint_tags(engine_result),
            "agent": engine_result.get("agent"),
            "engine": engine_result.get("backend"),
            "chosen_reason": engine_result.get("chosen_reason"),
            "backtest.last_action": last_action.get("action"),
        },
    )
    return {
        "model_uri": f"runs:/{run_id}/{MODEL_ARTIFACT_DIR}",
        "equity_plot": f"{EQUITY_CSV_ARTIFACT_DIR}/{plot.name}",
        "engine_result": ENGINE_RESULT_ARTIFACT,
    }


@with_retry("log inference")
def log_inference(run_id: str, inference_result: Mapping, *, tracking_uri: str) -> None:
    """``inference/result.json``, action probabilities and Q-values as metrics, action tag."""
    client = client_for(tracking_uri)
    scalars: dict[str, Any] = {
        "inference_target_position": inference_result.get("target_position"),
        "inference_reference_price": inference_result.get("reference_price"),
    }
    for group in ("probabilities", "q_values"):
        for action, value in (inference_result.get(group) or {}).items():
            scalars[f"inference_{group}_{action}"] = value
    for name, value in (inference_result.get("market") or {}).items():
        scalars[f"market_{name}"] = value
    _log_metrics_once(client, run_id, scalars)
    _log_json(client, run_id, dict(inference_result), INFERENCE_ARTIFACT)
    _set_tags(
        client,
        run_id,
        {"inference.action": inference_result.get("action"), "inference.as_of": inference_result.get("as_of")},
    )


@with_retry("log review")
def log_review(
    run_id: str, evidence: bytes, signal: Mapping, trace: Mapping, *, tracking_uri: str
) -> None:
    """Evidence, signal and trace JSON artifacts; confidence metric; signal action and trace head tags.

    ``evidence`` is the pack's canonical bytes (``tmpipe.review.evidence_ref.evidence_bytes``),
    written as they are: the trace references them by sha256, so they are the one stored copy.
    """
    client = client_for(tracking_uri)
    evidence_file, signal_file, trace_file = REVIEW_ARTIFACTS
    _log_bytes(client, run_id, evidence, evidence_file)
    for payload, artifact_file in ((signal, signal_file), (trace, trace_file)):
        _log_json(client, run_id, dict(payload), artifact_file)
    usage = signal.get("token_usage") or {}
    _log_metrics_once(
        client,
        run_id,
        {
            "confidence": signal.get("confidence"),
            "signal_target_position": signal.get("target_position"),
            "review_prompt_tokens": usage.get("prompt"),
            "review_completion_tokens": usage.get("completion"),
        },
    )
    _set_tags(
        client,
        run_id,
        {
            "signal.action": signal.get("action"),
            "signal.review_status": signal.get("review_status"),
            "signal.reviewer_model": signal.get("reviewer_model"),
            TAG_TRACE_HEAD: (trace.get("chain") or {}).get("head"),
        },
    )


LLM_RECORDING_ARTIFACT = "review/llm_recording.json"


@with_retry("log LLM recording")
def log_llm_recording(run_id: str, recording: Mapping, *, tracking_uri: str) -> None:
    """Every answered model request of the review with its fingerprint: what ``--replay-llm`` replays."""
    _log_json(client_for(tracking_uri), run_id, dict(recording), LLM_RECORDING_ARTIFACT)


@with_retry("find LLM recording")
def find_llm_recording(tracking_uri: str, experiment: str, identity_tags: Mapping[str, str], dest_dir: Path) -> Path | None:
    """The LLM recording of the symbol's run in another DAG run (``identity_tags``), downloaded; None if there is none."""
    from tmpipe.tracking.run_identity import tags_filter

    client = client_for(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    for run in client.search_runs([found.experiment_id], filter_string=tags_filter(dict(identity_tags)), max_results=5):
        if any(a.path == LLM_RECORDING_ARTIFACT for a in client.list_artifacts(run.info.run_id, "review")):
            dest_dir.mkdir(parents=True, exist_ok=True)
            return Path(client.download_artifacts(run.info.run_id, LLM_RECORDING_ARTIFACT, str(dest_dir)))
    return None


REVIEW_COST_METRIC = "review_cost_usd"


@with_retry("log review spend")
def log_review_spend(run_id: str, usd: float, *, tracking_uri: str) -> None:
    """The symbol's LLM spend so far, a point per answered call, read by the run's other symbols."""
    client = client_for(tracking_uri)
    step = len(client.get_metric_history(run_id, REVIEW_COST_METRIC))
    client.log_metric(run_id, REVIEW_COST_METRIC, float(usd), step=step)


@with_retry("read the DAG run's review spend")
def dag_run_review_spend(tracking_uri: str, run_tags: Mapping[str, str], exclude_run_id: str) -> float:
    """What the DAG run's other symbols (runs with ``run_tags``) have spent on the LLM so far.

    Each symbol logs to its own ``mlflow.experiment``, so every active experiment of the tracking
    store is searched: a DAG run's symbols in different experiments share one budget.
    """
    from mlflow.entities import ViewType

    from tmpipe.tracking.run_identity import tags_filter

    client = client_for(tracking_uri)
    experiment_ids = [e.experiment_id for e in _every_page(
        lambda token: client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token))]

    def runs_in(batch: list[str]) -> Iterator[Any]:
        return _every_page(lambda token: client.search_runs(batch, filter_string=tags_filter(dict(run_tags)),
                                                            max_results=1000, page_token=token))

    batches = (experiment_ids[start:start + 100] for start in range(0, len(experiment_ids), 100))
    return sum((r.data.metrics.get(REVIEW_COST_METRIC, 0.0) for batch in batches for r in runs_in(batch)
               if r.info.run_id != exclude_run_id), 0.0)


def _every_page(search: Callable[[str | None], Any]) -> Iterator[Any]:
    """Every item of a paged MLflow search: ``search(page_token)`` returns a PagedList with ``.token``."""
    token = None
    while True:
        page = search(token)
        yield from page
        token = page.token
        if not token:
            return
