"""`engine train-backtest` and `engine infer` on a real CSV file."""

import json

from click.testing import CliRunner

from tmpipe.engine.cli import engine


def test_train_backtest_then_infer_json(tmp_path):
    from tmpipe.engine.demo import synthetic_series

    data = tmp_path / "SYN.csv"
    synthetic_series("SYN", 260, seed=3).to_csv(data, index=False)
    runner = CliRunner()
    out = tmp_path / "out"
    trained = runner.invoke(engine, ["train-backtest", "--data", str(data), "--symbol", "SYN", "--epochs", "2",
                                     "--seed", "5", "--out", str(out), "--json"])
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout)
    assert result["seed"] == 5 and len(result["epochs"]) <= 2
    assert trained.stderr.count("fold 3/3 epoch ") == len(result["epochs"])
    assert trained.stderr.count("epoch ") == sum(f["epochs_run"] for f in result["walk_forward"]["folds"])
    inferred = runner.invoke(engine, ["infer", "--model", result["model_dir"], "--data", str(data), "--json"])
    assert inferred.exit_code == 0, inferred.output
    assert json.loads(inferred.stdout)["action"] == result["last_action"]["action"]


def test_human_output_and_errors(tmp_path):
    runner = CliRunner()
    shown = runner.invoke(engine, ["train-backtest", "--data", "demo:synthetic", "--symbol", "SYN", "--epochs", "1",
                                   "--out", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "epoch 1: loss" in shown.output and "buy_and_hold" in shown.output and "sharpe" in shown.output
    assert "timing skill p-value" in shown.output and "deployed: the network of fold 3" in shown.output
    missing = runner.invoke(engine, ["train-backtest", "--data", str(tmp_path / "nope.csv"), "--symbol", "SYN",
                                     "--out", str(tmp_path)])
    assert missing.exit_code == 1 and "nope.csv: file not found" in missing.output
