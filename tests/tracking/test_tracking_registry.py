"""Registry gate, alias promotion and loading the promoted model back (SQLite store)."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from tmpipe.config.sections import PromotionConfig
from tmpipe.errors import ModelNotPromotedError
from tmpipe.tracking.registry import evaluate_gate
from tmpipe.tracking import (
    client_for,
    download_run_bundle,
    get_or_create_run,
    load_promoted_model,
    log_train_backtest,
    register_and_promote,
)


def _trained_run(context_factory, engine_result_factory, tracking_uri, tmp_path, dag_run_id, **result_kwargs):
    ctx = context_factory(dag_run_id=dag_run_id)
    run = get_or_create_run(ctx)
    result = engine_result_factory(name=dag_run_id, **result_kwargs)
    log_train_backtest(run.run_id, result, tmp_path / f"out-{dag_run_id}", tracking_uri=tracking_uri)
    return run, result


def _same_tree(left: Path, right: Path) -> bool:
    files = sorted(p.relative_to(left) for p in left.rglob("*") if p.is_file())
    other = sorted(p.relative_to(right) for p in right.rglob("*") if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(left, right, [str(f) for f in files], shallow=False)
    return files == other and not mismatch and not errors and len(match) == len(files)


def test_gate_promotes_and_load_round_trips_bundle(
    context_factory, engine_result_factory, tracking_uri, tmp_path, promotion
):
    run, result = _trained_run(context_factory, engine_result_factory, tracking_uri, tmp_path, "manual__1")
    outcome = register_and_promote(run.run_id, "AAPL", "dqn", result, promotion, "tmpipe", tracking_uri=tracking_uri)
    assert outcome["model_name"] == "tmpipe.AAPL.dqn"
    assert outcome["version"] == "1" and outcome["promoted"] is True
    assert outcome["gate"]["checks"]["beat_buy_and_hold"] == {
        "required": True, "test_total_return": 0.12, "buy_and_hold_total_return": 0.05, "passed": True}
    # registering the same run again (a retried task) reuses its version
    again = register_and_promote(run.run_id, "AAPL", "dqn", result, promotion, "tmpipe", tracking_uri=tracking_uri)
    assert again["version"] == "1"
    client = client_for(tracking_uri)
    assert len(client.search_model_versions("name = 'tmpipe.AAPL.dqn'")) == 1
    tags = client.get_run(run.run_id).data.tags
    assert tags["gate.passed"] == "True" and tags["registry.version"] == "1"
    version_tags = client.get_model_version("tmpipe.AAPL.dqn", "1").tags
    assert set(version_tags) == {"symbol", "agent", "gate.passed", "gate.reasons", "gate.beat_buy_and_hold",
                                 "gate.max_drawdown", "gate.skill", "gate.beat_baselines"}
    assert (version_tags["symbol"], version_tags["agent"], version_tags["gate.passed"]) == ("AAPL", "dqn", "True")
    assert json.loads(version_tags["gate.beat_buy_and_hold"]) == outcome["gate"]["checks"]["beat_buy_and_hold"]

    promoted = load_promoted_model(tracking_uri, "tmpipe", "AAPL", "dqn", "champion", tmp_path / "dl")
    assert (promoted.version, promoted.run_id) == ("1", run.run_id)
    assert promoted.model_uri == "models:/tmpipe.AAPL.dqn@champion"
    assert promoted.lineage_tags()["model.source_run_id"] == run.run_id
    assert _same_tree(Path(result["model_dir"]), promoted.model_dir)
    assert promoted.engine_result["metrics"] == result["metrics"]
    assert promoted.engine_result["data_fingerprint"]["sha256"] == "cd" * 32

    import mlflow.pyfunc  # the registered model is a loadable pyfunc model

    loaded = mlflow.pyfunc.load_model(str(promoted.pyfunc_dir))
    assert loaded.metadata.get_input_schema().input_names() == ["symbol", "config_json"]
    assert Path(loaded.unwrap_python_model().bundle_dir, "weights.pt").is_file()


def test_registering_a_run_again_retags_its_version_with_the_gate_outcome_now(
    context_factory, engine_result_factory, tracking_uri, tmp_path, promotion
):
    """A retried task whose gate now fails: the same version, tagged with the new outcome."""
    run, result = _trained_run(context_factory, engine_result_factory, tracking_uri, tmp_path, "manual__1")
    assert register_and_promote(run.run_id, "AAPL", "dqn", result, promotion, "tmpipe", tracking_uri=tracking_uri)["promoted"]
    stricter = PromotionConfig.from_values({"alias": "champion", "require_beat_buy_and_hold": True, "max_drawdown": 0.0})
    again = register_and_promote(run.run_id, "AAPL", "dqn", result, stricter, "tmpipe", tracking_uri=tracking_uri)
    assert (again["version"], again["promoted"]) == ("1", False)
    tags = client_for(tracking_uri).get_model_version("tmpipe.AAPL.dqn", "1").tags
    assert tags["gate.passed"] == "False" and tags["gate.reasons"] == "; ".join(again["gate"]["reasons"])
    assert json.loads(tags["gate.max_drawdown"])["limit"] == 0.0


def test_failed_gate_registers_but_keeps_previous_champion(
    context_factory, engine_result_factory, tracking_uri, tmp_path, promotion
):
    good, good_result = _trained_run(
        context_factory, engine_result_factory, tracking_uri, tmp_path, "manual__1", bundle_text="good")
    register_and_promote(good.run_id, "AAPL", "dqn", good_result, promotion, "tmpipe", tracking_uri=tracking_uri)
    bad, bad_result = _trained_run(
        context_factory, engine_result_factory, tracking_uri, tmp_path, "manual__2",
        test_return=0.01, bh_return=0.05, test_drawdown=0.7, bundle_text="bad")
    outcome = register_and_promote(bad.run_id, "AAPL", "dqn", bad_result, promotion, "tmpipe", tracking_uri=tracking_uri)
    assert outcome["version"] == "2" and outcome["promoted"] is False
    checks = outcome["gate"]["checks"]
    assert checks["beat_buy_and_hold"]["passed"] is False
    assert checks["max_drawdown"] == {"limit": 0.5, "test_max_drawdown": 0.7, "passed": False}
    reasons = ["did not beat buy-and-hold: excess return -0.04", "max drawdown 0.7 > 0.5"]
    assert outcome["gate"]["reasons"] == reasons
    client = client_for(tracking_uri)
    version_tags = client.get_model_version("tmpipe.AAPL.dqn", "2").tags
    assert version_tags["gate.passed"] == "False" and version_tags["gate.reasons"] == "; ".join(reasons)
    bad_tags = client.get_run(bad.run_id).data.tags
    assert bad_tags["registry.promoted"] == "False" and bad_tags["gate.reasons"] == "; ".join(reasons)
    assert client.get_model_version("tmpipe.AAPL.dqn", "1").tags["gate.reasons"] == ""

    promoted = load_promoted_model(tracking_uri, "tmpipe", "AAPL", "dqn", "champion", tmp_path / "dl")
    assert promoted.version == "1" and promoted.run_id == good.run_id
    # mode "both" infers with the run's own model even when it was not promoted
    own = download_run_bundle(tracking_uri, bad.run_id, tmp_path / "own")
    assert (own / "weights.pt").read_bytes().startswith(b"bad")
    assert (promoted.model_dir / "weights.pt").read_bytes().startswith(b"good")


def test_missing_promoted_model_gives_clear_error(
    context_factory, engine_result_factory, tracking_uri, tmp_path, promotion
):
    with pytest.raises(ModelNotPromotedError) as missing_model:
        load_promoted_model(tracking_uri, "tmpipe", "MSFT", "dqn", "champion", tmp_path / "dl")
    assert str(missing_model.value) == (
        "symbol MSFT has no model with alias champion in registered model tmpipe.MSFT.dqn; "
        "run mode train_backtest first"
    )
    assert missing_model.value.retryable is False

    # registered, but never promoted: still no champion
    run, result = _trained_run(context_factory, engine_result_factory, tracking_uri, tmp_path, "manual__1",
                               test_return=0.0, bh_return=0.05)
    assert not register_and_promote(run.run_id, "AAPL", "dqn", result, promotion, "tmpipe",
                                    tracking_uri=tracking_uri)["promoted"]
    with pytest.raises(ModelNotPromotedError) as not_promoted:
        load_promoted_model(tracking_uri, "tmpipe", "AAPL", "dqn", "champion", tmp_path / "dl")
    assert str(not_promoted.value) == (
        "symbol AAPL has no model with alias champion in registered model tmpipe.AAPL.dqn; "
        "latest version 1 was not promoted: did not beat buy-and-hold: excess return -0.05"
    )


def test_gate_reasons_name_each_failed_check_with_its_numbers():
    promotion = PromotionConfig.from_values(
        {"require_beat_buy_and_hold": True, "max_drawdown": 0.5, "require_skill": False, "beat_baselines": []})

    def reasons(test=None, bench=None, drawdown=None):
        metrics = {"test": {"total_return": test, "max_drawdown": drawdown}, "buy_and_hold": {"total_return": bench}}
        return evaluate_gate({"metrics": metrics}, promotion)["reasons"]

    assert reasons(0.1, 0.05, 0.2) == []
    assert reasons(0.038, 0.05, 0.61) == ["did not beat buy-and-hold: excess return -0.012", "max drawdown 0.61 > 0.5"]
    assert reasons(float("nan"), 0.05, None) == [
        "did not beat buy-and-hold: test or buy-and-hold total return missing", "max drawdown missing"]
    # not required: losing to buy-and-hold is no reason
    assert evaluate_gate({"metrics": {"test": {"total_return": 0.0, "max_drawdown": 0.1},
                                      "buy_and_hold": {"total_return": 0.05}}},
                         promotion.model_copy(update={"require_beat_buy_and_hold": False}))["reasons"] == []


def test_a_version_whose_registration_did_not_finish_is_named(
    context_factory, engine_result_factory, tracking_uri, tmp_path
):
    """A version without gate tags (the task died between registering and tagging) is not a failed gate."""
    run, _ = _trained_run(context_factory, engine_result_factory, tracking_uri, tmp_path, "manual__1")
    client = client_for(tracking_uri)
    client.create_registered_model("tmpipe.AAPL.dqn")
    client.create_model_version("tmpipe.AAPL.dqn", source=f"runs:/{run.run_id}/model", run_id=run.run_id)
    with pytest.raises(ModelNotPromotedError, match=(
        "; latest version 1 has no promotion gate outcome [(]its registration did not finish[)]$")):
        load_promoted_model(tracking_uri, "tmpipe", "AAPL", "dqn", "champion", tmp_path / "dl")
