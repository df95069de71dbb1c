"""What the stages and the summary say about the model: version, promoted or not, and why not."""

import pytest

from tmpipe.errors import ModelNotPromotedError
from tmpipe.pipeline import stages
from tmpipe.pipeline.summary import StageOutputs, render_table, summarize_symbols

from .conftest import spec_text
from .test_stages import context

STRICT_GATE = {"mlflow": {"promotion": {"require_beat_buy_and_hold": False, "max_drawdown": 0.0001,
                                        "require_skill": False, "beat_baselines": []}}}


def test_a_model_that_fails_the_gate_is_named_with_its_reasons_in_the_summary_and_in_inference(tmpipe_home, tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(spec_text(extra_defaults=STRICT_GATE))
    trained = stages.train_backtest(context(spec_path, "train_backtest", "AAA"), "AAA", None)
    assert (trained["model_name"], trained["model_version"], trained["promoted"]) == ("tmpipe.AAA.deepscalper", "1", False)
    [reason] = trained["gate_reasons"]
    assert reason.startswith("max drawdown ") and reason.endswith(" > 0.0001")

    summary = summarize_symbols([StageOutputs("AAA", {"train_backtest": trained}, {})], mode="train_backtest")
    [row] = summary["symbols"]
    assert {key: row[key] for key in ("model_name", "model_version", "promoted", "gate_reasons")} == {
        "model_name": "tmpipe.AAA.deepscalper", "model_version": "1", "promoted": False, "gate_reasons": [reason]}
    assert f"no: {reason}" in " ".join(render_table(summary).split())

    with pytest.raises(ModelNotPromotedError) as not_promoted:
        stages.inference(context(spec_path, "inference", "AAA"), "AAA", None)
    assert str(not_promoted.value) == (
        "symbol AAA has no model with alias champion in registered model tmpipe.AAA.deepscalper; "
        f"latest version 1 was not promoted: {reason}"
    )


def test_inference_names_the_promoted_version_it_used(tmpipe_home, tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(spec_text())  # a gate every model passes
    trained = stages.train_backtest(context(spec_path, "train_backtest", "AAA"), "AAA", None)
    assert (trained["promoted"], trained["gate_reasons"]) == (True, [])
    inferred = stages.inference(context(spec_path, "inference", "AAA"), "AAA", None)
    assert {key: inferred[key] for key in ("model_name", "model_version", "promoted", "gate_reasons")} == {
        "model_name": "tmpipe.AAA.deepscalper", "model_version": "1", "promoted": True, "gate_reasons": []}
    row = summarize_symbols([StageOutputs("AAA", {"inference": inferred}, {})], mode="inference")["symbols"][0]
    assert (row["model_version"], row["promoted"]) == ("1", True)
