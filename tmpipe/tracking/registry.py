"""Register each symbol's model, promote it behind a gate, and load the promoted one back.

Registered model name: ``{prefix}.{symbol}.{agent}``. The alias (``champion`` by default)
moves only when the backtest passes the gate, so ``inference`` mode always gets a model
that did; a version that fails the gate is still registered, for the record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmpipe.finite import finite_or_none
from tmpipe.errors import ModelNotPromotedError, TrackingError
from tmpipe.tracking.run_identity import quote_filter_value
from tmpipe.tracking.retry import with_retry
from tmpipe.tracking.runs import _set_tags, client_for
from tmpipe.tracking.bundle_paths import BUNDLE_SUBDIR
from tmpipe.tracking.stage_logging import ENGINE_RESULT_ARTIFACT, MODEL_ARTIFACT_DIR

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tmpipe.config.sections import PromotionConfig



def _bundle_dir(pyfunc_dir: Path) -> Path:
    """Where the MLmodel file says the bundle artifact is (BUNDLE_SUBDIR when it says nothing)."""
    import yaml

    mlmodel = yaml.safe_load((pyfunc_dir / "MLmodel").read_text()) if (pyfunc_dir / "MLmodel").is_file() else {}
    artifacts = ((mlmodel or {}).get("flavors", {}).get("python_function", {}).get("artifacts") or {})
    relative = (artifacts.get("bundle") or {}).get("path")
    return pyfunc_dir / (relative or BUNDLE_SUBDIR)


GATE_REASONS_TAG = "gate.reasons"  # on the model version and the run: why the gate failed, "" when it passed
REASON_SEPARATOR = "; "


def registered_model_name(prefix: str, symbol: str, agent: str) -> str:
    return f"{prefix}.{symbol}.{agent}"


def evaluate_gate(engine_result: dict, promotion: PromotionConfig) -> dict:
    """The promotion checks with the numbers they used; missing numbers fail a check.

    Besides return and drawdown: out-of-sample timing skill (``skill.p_value`` below
    ``skill_level``) and a pooled out-of-sample Sharpe after costs above each baseline that
    ``beat_baselines`` names (docs/evaluation.md).
    """
    metrics = engine_result.get("metrics", {})
    test = metrics.get("test") or {}
    bench = metrics.get("buy_and_hold") or {}
    test_return = finite_or_none(test.get("total_return"))
    bench_return = finite_or_none(bench.get("total_return"))
    drawdown = finite_or_none(test.get("max_drawdown"))
    required = promotion.require_beat_buy_and_hold
    limit = float(promotion.max_drawdown)
    beat = test_return is not None and bench_return is not None and test_return > bench_return
    skill_required = promotion.require_skill
    level = float(promotion.skill_level)
    p_value = finite_or_none((engine_result.get("skill") or {}).get("p_value"))
    checks = {
        "beat_buy_and_hold": {
            "required": required,
            "test_total_return": test_return,
            "buy_and_hold_total_return": bench_return,
            "passed": beat or not required,
        },
        "max_drawdown": {
            "limit": limit,
            "test_max_drawdown": drawdown,
            "passed": drawdown is not None and drawdown <= limit,
        },
        "skill": {
            "required": skill_required,
            "level": level,
            "p_value": p_value,
            "passed": (p_value is not None and p_value < level) or not skill_required,
        },
        "beat_baselines": _baseline_check(engine_result, promotion.beat_baselines),
    }
    return {"passed": all(check["passed"] for check in checks.values()), "checks": checks, "reasons": gate_reasons(checks)}


def _sharpe_or_zero(report: dict | None) -> float | None:
    """A pooled report's Sharpe; a series without volatility (always flat) has Sharpe 0; None if no report."""
    if not report:
        return None
    value = finite_or_none(report.get("sharpe"))
    return 0.0 if value is None else value


def _baseline_check(engine_result: dict, names) -> dict:
    pooled = (engine_result.get("report") or {}).get("pooled")
    strategy = _sharpe_or_zero(pooled)
    baselines = engine_result.get("baselines") or {}
    against = {name: _sharpe_or_zero((baselines.get(name) or {}).get("pooled")) for name in names}
    beaten = {name: strategy is not None and value is not None and strategy > value for name, value in against.items()}
    return {"required": list(names), "sharpe": strategy, "baseline_sharpe": against, "passed": all(beaten.values())}


def gate_reasons(checks: dict) -> list[str]:
    """One short line per failed check, with its numbers, e.g. ``max drawdown 0.61 > 0.5``."""
    reasons = []
    beat = checks["beat_buy_and_hold"]
    if not beat["passed"]:
        test, bench = beat["test_total_return"], beat["buy_and_hold_total_return"]
        if test is None or bench is None:
            reasons.append("did not beat buy-and-hold: test or buy-and-hold total return missing")
        else:
            reasons.append(f"did not beat buy-and-hold: excess return {test - bench:.4g}")
    drawdown = checks["max_drawdown"]
    if not drawdown["passed"]:
        if drawdown["test_max_drawdown"] is None:
            reasons.append("max drawdown missing")
        else:
            reasons.append(f"max drawdown {drawdown['test_max_drawdown']:.4g} > {drawdown['limit']:.4g}")
    skill = checks["skill"]
    if not skill["passed"]:
        if skill["p_value"] is None:
            reasons.append("no out-of-sample skill test in the result")
        else:
            reasons.append(f"no demonstrated skill: timing p-value {skill['p_value']:.4g} >= {skill['level']:.4g}")
    baselines = checks["beat_baselines"]
    if not baselines["passed"]:
        values = {} if baselines["sharpe"] is None else baselines["baseline_sharpe"]
        if baselines["sharpe"] is None:
            reasons.append("no out-of-sample report in the result to compare with the baselines")
        for name, value in values.items():
            if value is None:
                reasons.append(f"baseline {name} missing from the result")
            elif baselines["sharpe"] <= value:
                reasons.append(f"did not beat {name} after costs: Sharpe {baselines['sharpe']:.4g} <= {value:.4g}")
    return reasons


def _ensure_registered_model(client: MlflowClient, name: str, description: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description=description)
    except MlflowException as exc:  # exists already, possibly created by a parallel task
        if exc.error_code != "RESOURCE_ALREADY_EXISTS" and "already exists" not in str(exc):
            raise


def _tagged_version_for_run(client: MlflowClient, name: str, run_id: str, tags: dict[str, str]):
    """The run's version of ``name`` carrying ``tags``: created with them in one call, or (a retried
    task) the version registered before, tagged again one tag per call (MLflow has no batch for these)."""
    found = client.search_model_versions(
        f"name = {quote_filter_value(name)} AND run_id = {quote_filter_value(run_id)}"
    )
    if not found:
        return client.create_model_version(
            name, source=f"runs:/{run_id}/{MODEL_ARTIFACT_DIR}", run_id=run_id, tags=tags
        )
    version = min(found, key=lambda mv: int(mv.version))
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    return version


@with_retry("register and promote model")
def register_and_promote(
    run_id: str,
    symbol: str,
    agent: str,
    engine_result: dict,
    promotion: PromotionConfig,
    prefix: str,
    *,
    tracking_uri: str,
) -> dict:
    """Register the run's ``model/`` (once per run) and set the alias if the gate passes.

    Returns ``{model_name, version, alias, promoted, model_uri, gate}``; the gate outcome (its
    ``reasons`` too) is also written as run tags and model-version tags, where inference mode
    reads why a symbol has no promoted model.
    """
    client = client_for(tracking_uri)
    name = registered_model_name(prefix, symbol, agent)
    alias = promotion.alias
    _ensure_registered_model(client, name, f"tmpipe {agent} agent for {symbol}")
    gate = evaluate_gate(engine_result, promotion)
    gate_tags = {
        "gate.passed": gate["passed"],
        GATE_REASONS_TAG: REASON_SEPARATOR.join(gate["reasons"]),
        **{f"gate.{key}": json.dumps(check, sort_keys=True) for key, check in gate["checks"].items()},
    }
    version_tags = {"symbol": symbol, "agent": agent, **{key: str(value) for key, value in gate_tags.items()}}
    version = _tagged_version_for_run(client, name, run_id, version_tags)
    if gate["passed"]:
        client.set_registered_model_alias(name, alias, version.version)
    _set_tags(
        client,
        run_id,
        {
            **gate_tags,
            "registry.model_name": name,
            "registry.version": version.version,
            "registry.promoted": gate["passed"],
            "registry.alias": alias if gate["passed"] else None,
        },
    )
    return {
        "model_name": name,
        "version": str(version.version),
        "alias": alias,
        "promoted": gate["passed"],
        "model_uri": f"models:/{name}/{version.version}",
        "gate": gate,
    }


@with_retry("download run model")
def download_run_bundle(tracking_uri: str, run_id: str, dest_dir: str | Path) -> Path:
    """The engine bundle logged by ``log_train_backtest`` in ``run_id``, on local disk.

    For mode ``both``: inference uses the model this very run just trained, promoted or not.
    """
    target = Path(dest_dir)
    target.mkdir(parents=True, exist_ok=True)
    pyfunc_dir = Path(client_for(tracking_uri).download_artifacts(run_id, MODEL_ARTIFACT_DIR, str(target)))
    model_dir = _bundle_dir(pyfunc_dir)
    if not model_dir.is_dir():
        raise TrackingError(f"run {run_id} has no model bundle at {MODEL_ARTIFACT_DIR}/{BUNDLE_SUBDIR}")
    return model_dir


@dataclass(frozen=True)
class PromotedModel:
    """A promoted model downloaded to local disk, with the backtest it was promoted on."""

    model_name: str
    version: str
    alias: str
    run_id: str
    model_uri: str
    pyfunc_dir: Path
    model_dir: Path
    engine_result: dict

    def lineage_tags(self) -> dict[str, str]:
        """Tags for the inference run that used this model (which version, trained where)."""
        return {
            "model.name": self.model_name,
            "model.version": self.version,
            "model.alias": self.alias,
            "model.source_run_id": self.run_id,
        }


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower()


def _why_no_alias(client: MlflowClient, name: str) -> str:
    """What the latest registered version's gate said, read back from its tags."""
    from mlflow.exceptions import MlflowException

    try:
        versions: list[Any] = client.search_model_versions(
            f"name = {quote_filter_value(name)}", max_results=1, order_by=["version_number DESC"]
        )
    except MlflowException as exc:
        if not _is_missing(exc):
            raise
        versions = []
    if not versions:
        return "run mode train_backtest first"
    latest = versions[0]
    tags = latest.tags or {}
    if tags.get("gate.passed") == "False":
        reasons = tags.get(GATE_REASONS_TAG) or "the promotion gate failed"
        return f"latest version {latest.version} was not promoted: {reasons}"
    if tags.get("gate.passed") is None:
        return f"latest version {latest.version} has no promotion gate outcome (its registration did not finish)"
    return f"latest version {latest.version} passed the gate but holds no alias (was the alias removed?)"


@with_retry("load promoted model")
def load_promoted_model(
    tracking_uri: str, prefix: str, symbol: str, agent: str, alias: str, dest_dir: str | Path
) -> PromotedModel:
    """Download the version behind ``alias`` into ``dest_dir/v<version>``.

    ``model_dir`` is the engine bundle (what ``tmpipe.engine.infer`` takes);
    ``engine_result`` is the train/backtest result logged with it, for the review evidence.
    """
    from mlflow.exceptions import MlflowException

    client = client_for(tracking_uri)
    name = registered_model_name(prefix, symbol, agent)
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if not _is_missing(exc):
            raise
        raise ModelNotPromotedError(
            f"symbol {symbol} has no model with alias {alias} in registered model {name}; "
            + _why_no_alias(client, name)
        ) from exc
    if not version.run_id:
        raise TrackingError(f"{name} version {version.version} has no source run to download from")
    target = Path(dest_dir) / f"v{version.version}"
    target.mkdir(parents=True, exist_ok=True)
    pyfunc_dir = Path(client.download_artifacts(version.run_id, MODEL_ARTIFACT_DIR, str(target)))
    result_path = client.download_artifacts(version.run_id, ENGINE_RESULT_ARTIFACT, str(target))
    model_dir = _bundle_dir(pyfunc_dir)
    if not model_dir.is_dir():
        raise TrackingError(f"{name} version {version.version}: no bundle at {MODEL_ARTIFACT_DIR}/{BUNDLE_SUBDIR}")
    return PromotedModel(
        model_name=name,
        version=str(version.version),
        alias=alias,
        run_id=version.run_id,
        model_uri=f"models:/{name}@{alias}",
        pyfunc_dir=pyfunc_dir,
        model_dir=model_dir,
        engine_result=json.loads(Path(result_path).read_text()),
    )
