"""train_backtest / infer end to end on ~300 synthetic bars with 2 epochs."""

import json

import numpy as np
import pandas as pd
import pytest

from tmpipe.engine import infer, train_backtest
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
    json.dumps(result, allow_nan=False)
    json.dumps(inference, allow_nan=False)
    assert result_errors({**result, "surprise": 1}) == ["<root>: Additional properties are not allowed ('surprise' was unexpected)"]
    broken = json.loads(json.dumps(result))
    broken["metrics"]["test"]["max_drawdown"] = 1.5
    assert any(e.startswith("metrics/test/max_drawdown") for e in result_errors(broken))


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
    assert list(curve.columns) == ["date", "close", "position", "equity", "buy_and_hold"]
    test = result["metrics"]["test"]
    assert len(curve) == test["bars"] + 1 == result["splits"]["test"]["rows"]
    initial = result["config"]["trademaster"]["initial_cash"]
    assert curve["equity"].iloc[-1] / initial - 1 == pytest.approx(test["total_return"])
    assert curve["buy_and_hold"].iloc[-1] / initial - 1 == pytest.approx(result["metrics"]["buy_and_hold"]["total_return"])
    assert result["excess_return"] == pytest.approx(test["total_return"] - result["metrics"]["buy_and_hold"]["total_return"])
    assert curve["position"].iloc[-1] == result["last_action"]["target_position"]
    assert (curve["equity"] >= 0).all()


def test_progress_callback_and_model_selection(trained):
    config, result, records = trained
    assert [r["epoch"] for r in records] == [1, 2] == [e["epoch"] for e in result["epochs"]]
    assert set(records[0]) == {"epoch", "loss", "train_return", "valid_return", "valid_sharpe", "epsilon", "seconds"}
    sharpes = [e["valid_sharpe"] or 0.0 for e in result["epochs"]]
    assert result["chosen_epoch"] == int(np.argmax(sharpes)) + 1
    assert "validation Sharpe" in result["chosen_reason"]
    assert result["metrics"]["valid"]["sharpe"] == pytest.approx(result["epochs"][result["chosen_epoch"] - 1]["valid_sharpe"])
    assert result["epochs"][-1]["epsilon"] == pytest.approx(config["trademaster"]["epsilon_end"])


def test_bundle_metadata(trained):
    _, result, _ = trained
    meta = load_bundle(result["model_dir"]).metadata
    assert meta["symbol"] == SYMBOL and meta["lookback"] == 10 and meta["actions"] == ["short", "flat", "long"]
    assert meta["data_fingerprint"] == result["data_fingerprint"]
    assert len(meta["normalisation"]["mean"]) == len(meta["features"]) == 11
    assert meta["torch_version"]


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


def test_early_stopping_stops_after_patience_epochs_without_improvement(synthetic_config, tmp_path):
    result = train_backtest(synthetic_config(epochs=4, early_stopping_patience=1), symbol=SYMBOL, out_dir=tmp_path)
    ran, chosen = len(result["epochs"]), result["chosen_epoch"]
    sharpes = [e["valid_sharpe"] or 0.0 for e in result["epochs"]]
    # each epoch either improved the best validation Sharpe or was the last one run
    assert all(sharpes[i] > max(sharpes[:i]) for i in range(1, ran - 1))
    assert ran == 4 or (ran == chosen + 1 and "early stopping after epoch" in result["chosen_reason"])
