"""train_backtest / infer end to end on ~300 synthetic bars with 2 epochs."""

import json

import pandas as pd
import pytest

from tmpipe.engine import builtin, infer, train_backtest
from tmpipe.engine.bundle import load_bundle
from tmpipe.engine.defaults import result_errors
from tmpipe.errors import EngineError, SymbolError

SYMBOL = "SYN"


def _without_timings(result: dict) -> dict:
    result = json.loads(json.dumps(result))
    for record in result["epochs"]:
        record.pop("seconds")
    for key in ("wall_time_seconds", "equity_curve_path", "model_dir"):
        result.pop(key)
    return result


def test_same_seed_gives_identical_results(trained, synthetic_config, tmp_path):
    config, first, _ = trained
    second = train_backtest(config, symbol=SYMBOL, out_dir=tmp_path / "again")
    assert _without_timings(second) == _without_timings(first)
    other = train_backtest(synthetic_config(seed=7), symbol=SYMBOL, out_dir=tmp_path / "other")
    assert [e["loss"] for e in other["epochs"]] != [e["loss"] for e in first["epochs"]]


def test_results_validate_against_the_schema(trained):
    config, result, _ = trained
    assert result_errors(result) == []
    inference = infer(result["model_dir"], config, symbol=SYMBOL)
    assert result_errors(inference) == []
    assert result_errors({**inference, "backend": "upstream", "target_position": 1.5}) == []
    assert [e.split(":")[0] for e in result_errors({**inference, "target_position": 1.5})] == ["target_position"]
    json.dumps(result, allow_nan=False)
    json.dumps(inference, allow_nan=False)
    assert result_errors({**result, "surprise": 1}) == ["<root>: Additional properties are not allowed ('surprise' was unexpected)"]
    broken = json.loads(json.dumps(result))
    broken["metrics"]["test"]["max_drawdown"] = 1.5
    assert any(e.startswith("metrics/test/max_drawdown") for e in result_errors(broken))


def test_train_backtest_and_infer_refuse_a_result_that_breaks_the_schema(trained, monkeypatch, tmp_path):
    config, result, _ = trained
    broken = {**json.loads(json.dumps(result)), "surprise": 1}
    broken["metrics"]["test"]["max_drawdown"] = 1.5
    monkeypatch.setattr(builtin, "train_backtest", lambda *args, **kwargs: broken)
    with pytest.raises(EngineError, match="builtin train_backtest result breaks") as caught:
        train_backtest(config, symbol=SYMBOL, out_dir=tmp_path)
    assert "'surprise' was unexpected" in str(caught.value) and "metrics/test/max_drawdown" in str(caught.value)
    inference = infer(result["model_dir"], config, symbol=SYMBOL)
    monkeypatch.setattr(builtin, "infer", lambda *args, **kwargs: {**inference, "action": "hold"})
    with pytest.raises(EngineError, match="builtin inference result breaks.*action"):
        infer(result["model_dir"], config, symbol=SYMBOL)


def test_schema_takes_upstream_results_and_keeps_the_upstream_object_to_them(trained):
    _, result, _ = trained
    report = {"upstream_total_return": -1.93, "upstream_min_equity": -5000.0, "upstream_nonpositive_equity_bars": 3,
              "nonpositive_equity_bars": 0, "unchanged_price_bars": 1, "max_units": 4.0}
    process = {"seconds": 12.5, "peak_rss_mb": 700.0}
    upstream = {"commit": "c1c4838b518a85ecec6d4ded40be8815ade5f41d", "config_path": "/tmp/c.json", "work_dir": "/tmp/w",
                "unmapped": {"epsilon_start": "upstream explores at one fixed rate"}, "valid": report, "test": dict(report),
                "train_env_steps_per_epoch": 885, "processes": {"train": process, "valid": process, "test": process}}
    epochs = [{**e, "loss": None, "valid_sharpe": None} for e in result["epochs"]]
    shaped = {**json.loads(json.dumps(result)), "backend": "upstream", "epochs": epochs, "upstream": upstream}
    assert result_errors(shaped) == []
    assert result_errors({k: v for k, v in shaped.items() if k != "upstream"}) == ["<root>: 'upstream' is a required property"]
    assert [e.split(":")[0] for e in result_errors({**shaped, "backend": "builtin"})] == ["upstream"]
    # upstream trades whole units: its exposure may exceed 1x equity, the builtin's may not
    leveraged = {**shaped, "last_action": {**shaped["last_action"], "target_position": -1.81}}
    assert result_errors(leveraged) == []
    leveraged_builtin = {k: v for k, v in leveraged.items() if k != "upstream"} | {"backend": "builtin"}
    assert [e.split(":")[0] for e in result_errors(leveraged_builtin)] == ["last_action/target_position"]
    # once upstream's re-marked equity is gone its exposure is undefined: null, never NaN in JSON
    ruined = {**shaped, "last_action": {**shaped["last_action"], "target_position": None}}
    assert result_errors(ruined) == []
    ruined_builtin = {k: v for k, v in ruined.items() if k != "upstream"} | {"backend": "builtin"}
    assert [e.split(":")[0] for e in result_errors(ruined_builtin)] == ["last_action/target_position"]
    extra = json.loads(json.dumps(shaped))
    extra["upstream"]["surprise"] = 1
    extra["upstream"]["test"]["sharpe"] = 0.5
    extra["upstream"]["processes"]["train"]["cpu"] = 1
    assert sorted(e.split(":")[0] for e in result_errors(extra)) == ["upstream", "upstream/processes/train", "upstream/test"]
    bad = json.loads(json.dumps(shaped))
    bad["upstream"]["unmapped"]["max_position"] = 1
    bad["upstream"]["commit"] = "main"
    assert sorted(e.split(":")[0] for e in result_errors(bad)) == ["upstream/commit", "upstream/unmapped/max_position"]


def test_inference_reproduces_the_backtests_final_action(trained):
    config, result, _ = trained
    inference = infer(result["model_dir"], config, symbol=SYMBOL)
    assert inference["action"] == result["last_action"]["action"]
    assert inference["target_position"] == result["last_action"]["target_position"]
    assert inference["as_of"] == result["last_action"]["date"]
    curve = pd.read_csv(result["equity_curve_path"])
    assert inference["reference_price"] == pytest.approx(curve["close"].iloc[-1])
    q = inference["q_values"]
    assert max(q, key=q.get) == inference["action"]
    assert sum(inference["probabilities"].values()) == pytest.approx(1.0)


def test_equity_curve_file_matches_the_reported_metrics(trained):
    _, result, _ = trained
    curve = pd.read_csv(result["equity_curve_path"])
    assert list(curve.columns) == ["date", "close", "position", "equity", "buy_and_hold", "flat", "ma_crossover", "fold"]
    test, folds = result["metrics"]["test"], len(result["walk_forward"]["folds"])
    assert folds == 3 and list(curve["fold"].unique()) == [1, 2, 3]
    assert len(curve) == test["bars"] + folds  # each fold's last bar earns nothing inside its window
    assert (curve["fold"] == folds).sum() == result["splits"]["test"]["rows"]
    assert (curve["flat"] == curve["flat"].iloc[0]).all()
    initial = result["config"]["trademaster"]["initial_cash"]
    assert curve["equity"].iloc[-1] / initial - 1 == pytest.approx(test["total_return"])
    assert curve["buy_and_hold"].iloc[-1] / initial - 1 == pytest.approx(result["metrics"]["buy_and_hold"]["total_return"])
    assert result["excess_return"] == pytest.approx(test["total_return"] - result["metrics"]["buy_and_hold"]["total_return"])
    assert curve["position"].iloc[-1] == result["last_action"]["target_position"]
    assert (curve["equity"] >= 0).all()


def test_progress_callback_and_model_selection(trained):
    config, result, records = trained
    assert [(r["fold"], r["epoch"]) for r in records] == [(f, e) for f in (1, 2, 3) for e in (1, 2)]
    assert [r["epoch"] for r in records if r["fold"] == 3] == [e["epoch"] for e in result["epochs"]]
    assert set(records[0]) == {"epoch", "loss", "train_return", "valid_return", "valid_sharpe", "epsilon", "seconds",
                               "fold", "folds"}
    # epoch 1 ends with exploration above 0.5, so it is never chosen
    assert result["epochs"][0]["epsilon"] > 0.5 and result["chosen_epoch"] == 2
    assert "validation windows of folds 1..3 pooled" in result["chosen_reason"]
    assert result["metrics"]["valid"]["sharpe"] == pytest.approx(result["epochs"][result["chosen_epoch"] - 1]["valid_sharpe"])
    assert result["epochs"][-1]["epsilon"] == pytest.approx(config.trademaster.epsilon_end)


def test_bundle_metadata(trained):
    _, result, _ = trained
    meta = load_bundle(result["model_dir"]).metadata
    assert meta["symbol"] == SYMBOL and meta["lookback"] == 10 and meta["actions"] == ["short", "flat", "long"]
    assert meta["data_fingerprint"] == result["data_fingerprint"]
    assert len(meta["normalisation"]["mean"]) == len(meta["features"]) == 11
    assert meta["format"] == 2 and meta["numpy_version"]


def test_long_only_model_never_shorts(synthetic_config, tmp_path):
    config = synthetic_config(allow_short=False, epochs=1, max_position=0.5)
    result = train_backtest(config, symbol="LONG", out_dir=tmp_path)
    curve = pd.read_csv(result["equity_curve_path"])
    assert set(curve["position"]) <= {0.0, 0.5}
    inference = infer(result["model_dir"], config, symbol="LONG")
    assert inference["q_values"]["short"] is None and inference["probabilities"]["short"] == 0.0
    assert result_errors(inference) == []


def test_unsafe_symbol_and_missing_bundle(trained, tmp_path):
    config, _, _ = trained
    with pytest.raises(SymbolError):
        train_backtest(config, symbol="a/b", out_dir=tmp_path)
    with pytest.raises(EngineError, match="not a model bundle"):
        infer(tmp_path, config, symbol=SYMBOL)


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_stops_after_patience_epochs_without_improvement(synthetic_config, tmp_path, patience):
    """A learning rate too small to move any weight: no epoch improves on the first, so every
    walk-forward fold must stop after 1 + patience of the 4 epochs. Selection then takes the
    last epoch run: epochs whose exploration rate ended above 0.5 are never chosen (epoch 1 ends
    at 0.77, epoch 2 at 0.53, epoch 3 at 0.29 on a 4-epoch schedule), and with patience 1 no
    epoch qualifies, so the last one is taken and the reason says so."""
    config = synthetic_config(epochs=4, early_stopping_patience=patience, learning_rate=1e-30)
    result = train_backtest(config, symbol=SYMBOL, out_dir=tmp_path)
    sharpes = [e["valid_sharpe"] for e in result["epochs"]]
    assert sharpes == [sharpes[0]] * (1 + patience)
    assert [fold["epochs_run"] for fold in result["walk_forward"]["folds"]] == [1 + patience] * 3
    assert result["chosen_epoch"] == 1 + patience
    expected = ("no epoch ended with exploration rate <= 0.5 (last: 0.530); the last epoch was taken" if patience == 1
                else "among the 1 epoch(s) whose exploration rate ended <= 0.5")
    assert expected in result["chosen_reason"]
