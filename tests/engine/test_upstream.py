"""The upstream TradeMaster backend: pin checks, config mapping, output parsing, and a real run.

The real run needs a TradeMaster checkout and its interpreter (vendor/README.md), given by
TMPIPE_TRADEMASTER_HOME and TMPIPE_TRADEMASTER_PYTHON; everything else always runs.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tmpipe.config.sections import TrademasterConfig
from tmpipe.engine import upstream_config as boundary
from tmpipe.engine.bars import Bars
from tmpipe.engine.data import load_dataset
from tmpipe.engine.defaults import default_config, result_errors
from tmpipe.engine.upstream import EpochLog, exposure_or_none, remark_trades, run_child, train_backtest_upstream
from tmpipe.errors import UpstreamError

REPO = Path(__file__).resolve().parents[2]
HOME_ENV, PYTHON_ENV = "TMPIPE_TRADEMASTER_HOME", "TMPIPE_TRADEMASTER_PYTHON"


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def fake_checkout(tmp_path) -> Path:
    """A throwaway git repository shaped like a TradeMaster checkout (entry point, package, data)."""
    home = tmp_path / "TradeMaster"
    (home / "tools" / "algorithmic_trading").mkdir(parents=True)
    (home / "trademaster" / "environments").mkdir(parents=True)
    (home / "data").mkdir()
    (home / boundary.ENTRY_POINT).write_text("print('train')\n")
    (home / "trademaster" / "environments" / "env.py").write_text("COST = 0.001\n")
    (home / "data" / "big.csv").write_text("a,b\n1,2\n")
    subprocess.run(["git", "init", "-q", str(home)], check=True)
    _git(home, "add", ".")
    _git(home, "commit", "-q", "-m", "initial")
    return home


def test_code_pin_matches_vendor_pin_file():
    pin = tomllib.loads((REPO / "vendor" / "trademaster.toml").read_text())
    assert pin["trademaster"]["commit"] == boundary.PINNED_COMMIT
    assert pin["trademaster"]["entry_point"] == boundary.ENTRY_POINT
    assert tuple(pin["verification"]["unmodified_paths"]) == boundary.UNMODIFIED_PATHS


def test_commit_mismatch_names_both_commits(fake_checkout):
    actual = _git(fake_checkout, "rev-parse", "HEAD")
    with pytest.raises(UpstreamError) as caught:
        boundary.verify_checkout(fake_checkout)
    assert actual in str(caught.value) and boundary.PINNED_COMMIT in str(caught.value)
    assert boundary.verify_checkout(fake_checkout, pinned=actual) == actual


def test_local_code_change_is_refused_but_missing_data_is_not(fake_checkout):
    actual = _git(fake_checkout, "rev-parse", "HEAD")
    (fake_checkout / "data" / "big.csv").unlink()  # snapshots may lack large data files
    assert boundary.verify_checkout(fake_checkout, pinned=actual) == actual
    (fake_checkout / "trademaster" / "environments" / "env.py").write_text("COST = 0.0\n")
    with pytest.raises(UpstreamError, match="(?s)local changes.*env.py"):
        boundary.verify_checkout(fake_checkout, pinned=actual)


def test_not_a_git_checkout_is_an_upstream_error(tmp_path):
    with pytest.raises(UpstreamError, match="rev-parse"):
        boundary.verify_checkout(tmp_path)


def test_missing_settings_and_interpreter_are_reported(fake_checkout, tmp_path):
    with pytest.raises(UpstreamError, match="trademaster.upstream.home"):
        boundary.runtime_paths(TrademasterConfig.from_values({"upstream": {"home": None, "python": None}}))
    with pytest.raises(UpstreamError, match="not a TradeMaster checkout"):
        boundary.runtime_paths(TrademasterConfig.from_values({"upstream": {"home": str(tmp_path), "python": sys.executable}}))
    missing = tmp_path / "venv" / "bin" / "python"
    with pytest.raises(UpstreamError, match="not an executable interpreter"):
        boundary.runtime_paths(TrademasterConfig.from_values({"upstream": {"home": str(fake_checkout), "python": str(missing)}}))
    config = default_config(data={"source": "demo", "demo_series": "synthetic"},
                            trademaster={"backend": "upstream", "upstream": {"home": str(fake_checkout), "python": str(missing)}})
    with pytest.raises(UpstreamError, match="not an executable interpreter"):
        train_backtest_upstream(config, symbol="SYN", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before any work


def test_config_mapping_puts_costs_where_the_environment_reads_them(tmp_path):
    config = default_config(data={"source": "demo", "demo_series": "synthetic", "lookback": 7},
                            trademaster={"epochs": 3, "seed": 9, "transaction_cost_pct": 0.002, "slippage_pct": 0.0005,
                                         "initial_cash": 50000, "learning_rate": 0.01, "gamma": 0.9,
                                         "replay_size": 2000, "hidden_size": 32, "epsilon_end": 0.1,
                                         "hindsight_weight": 0.5, "hindsight_horizon": 3})
    paths = {name: tmp_path / f"{name}.csv" for name in ("train", "valid", "test")}
    cfg = boundary.build_upstream_config(config, symbol="SYN", split_paths=paths, work_dir=tmp_path / "w", threads=2)
    env = cfg["environment"]["dataset"]
    assert env["future_weights"] == 0.5 and env["forward_num_day"] == 3 == cfg["data"]["forward_num_day"]
    assert env["transaction_cost_pct"] == pytest.approx(0.0025)
    assert env["initial_amount"] == 50000.0 and env["backward_num_day"] == 7
    assert env["test_path"] == str(paths["test"].resolve())
    assert "transaction_cost_pct" not in cfg["data"]  # upstream would ignore it there
    assert cfg["trainer"]["epochs"] == 3 and cfg["trainer"]["seeds_list"] == [9]
    assert cfg["trainer"]["buffer_size"] == 2000 and cfg["trainer"]["work_dir"] == str((tmp_path / "w").resolve())
    assert cfg["optimizer"]["lr"] == 0.01 and cfg["agent"]["gamma"] == 0.9
    assert cfg["act"]["state_dim"] == 16 * 7 + 2 and cfg["act"]["dims"] == [32, 16] and cfg["act"]["explore_rate"] == 0.1
    valid_cfg = boundary.with_test_path(cfg, paths["valid"])
    assert valid_cfg["environment"]["dataset"]["test_path"] == str(paths["valid"].resolve())
    assert cfg["environment"]["dataset"]["test_path"] == str(paths["test"].resolve())
    no_short = default_config(trademaster={"allow_short": False})
    with pytest.raises(UpstreamError, match="allow_short"):
        boundary.build_upstream_config(no_short, symbol="SYN", split_paths=paths, work_dir=tmp_path, threads=1)


def test_split_csvs_have_trademasters_layout(tmp_path):
    config = default_config(data={"source": "demo", "demo_series": "synthetic", "synthetic_rows": 200, "lookback": 5})
    dataset = load_dataset(config.data, "SYN")
    paths = boundary.write_split_csvs(dataset.splits, tmp_path)
    with open(paths["test"], newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["", "tic", "date", *boundary.TECH_INDICATORS]
    test = pd.read_csv(paths["test"], index_col=0)
    assert list(test.index) == list(range(len(dataset.splits["test"].bars)))
    assert np.allclose(test["close"], dataset.splits["test"].bars["close"])


def test_epoch_log_parses_the_trainers_output():
    transcript = """Train Episode: [1/2]
+--------------+
| Total Return |
+--------------+
| -177.964330% |
+--------------+
Valid Episode: [1/2]
+--------------+
| Total Return |
+--------------+
| -193.080913% |
+--------------+
Train Episode: [2/2]
+--------------+
| Total Return |
+--------------+
| 27.884072% |
+--------------+
Valid Episode: [2/2]
+--------------+
| Total Return |
+--------------+
| -0.000000% |
+--------------+
train end"""
    events = []
    log = EpochLog(0.05, events.append)
    for line in transcript.splitlines():
        log(line)
    assert [(r["epoch"], r["train_return"], r["valid_return"]) for r in log.records] == [
        (1, pytest.approx(-1.7796433), pytest.approx(-1.93080913)), (2, pytest.approx(0.27884072), 0.0)]
    assert all(r["epsilon"] == 0.05 and r["seconds"] >= 0 for r in log.records)
    assert sum("line" in e for e in events) == len(transcript.splitlines())


def test_remark_trades_books_shorts_as_liabilities():
    bars = Bars.from_frame(pd.DataFrame({"date": pd.date_range("2024-01-01", periods=8),
                                         "close": [9, 10, 11, 12, 10, 10, 13, 12.0]}))
    lookback, units = 2, np.array([0, -1, -2, -2, 1, 1, 1])  # units held over rows 1..7 of the window
    close = bars["close"][lookback - 1 :]
    pnl = np.concatenate([[0.0], units[1:] * np.diff(close)])
    result = pd.DataFrame({"daily_return": pnl, "total assets": 100.0 + np.cumsum(pnl) - 40})  # upstream's own figures
    curve = remark_trades(result, bars, lookback, cost=0.01, initial_cash=100.0)
    # Units decided at each bar; over the unchanged price (10 -> 10) the true +1 cannot be seen,
    # so the previous -2 is kept until the next move reveals the position.
    assert list(curve["units"]) == [-1, -2, -2, -2, 1, 1, 1]
    fees = 0.01 * np.abs(np.diff(np.concatenate([[0], curve["units"]]))) * close
    expected = 100.0 + np.concatenate([[0.0], np.cumsum(curve["units"][:-1] * np.diff(close) - fees[:-1])])
    assert np.allclose(curve["equity"], expected)
    assert curve["report"]["unchanged_price_bars"] == 1 and curve["report"]["upstream_nonpositive_equity_bars"] == 0
    result.loc[2, "daily_return"] = 0.5  # not a whole number of units
    with pytest.raises(UpstreamError, match="whole-unit"):
        remark_trades(result, bars, lookback, cost=0.01, initial_cash=100.0)


def test_exposure_is_null_once_remarked_equity_is_gone():
    bars = Bars.from_frame(pd.DataFrame({"date": pd.date_range("2024-01-01", periods=6), "close": [10, 10, 11, 13, 16, 20.0]}))
    units = np.array([0, -1, -1, -1, -1])  # a one-unit short through a doubling, on 6 of cash
    close = bars["close"][1:]
    pnl = np.concatenate([[0.0], units[1:] * np.diff(close)])
    curve = remark_trades(pd.DataFrame({"daily_return": pnl, "total assets": 6.0 + np.cumsum(pnl)}), bars, 2,
                          cost=0.0, initial_cash=6.0)
    assert curve["equity"][-1] <= 0 and np.isnan(curve["position"][-1])
    assert exposure_or_none(curve["position"][-1]) is None
    assert exposure_or_none(curve["position"][1]) == pytest.approx(-11 / 5)  # -1 unit x 11 / equity 6 - 1


def test_run_child_streams_measures_and_keeps_our_environment_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPIPE_TEST_SECRET", "s3cr3t")
    program = "import os, sys\nprint('first')\nprint(sorted(os.environ))\nsys.exit(int(sys.argv[1]))"
    lines = []
    run = run_child([sys.executable, "-c", program, "0"], home=tmp_path, out_dir=tmp_path, on_line=lines.append)
    assert lines[0] == "first" and "TMPIPE_TEST_SECRET" not in lines[1] and "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in lines[1]
    assert run.peak_rss_mb > 1 and run.seconds > 0
    with pytest.raises(UpstreamError, match="exited with 3(.|\n)*first"):
        run_child([sys.executable, "-c", program, "3"], home=tmp_path, out_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get(HOME_ENV) and os.environ.get(PYTHON_ENV)),
                    reason=f"needs a TradeMaster checkout and interpreter: set {HOME_ENV} and {PYTHON_ENV} (vendor/README.md)")
def test_real_upstream_train_backtest_and_infer(tmp_path):
    from tmpipe.engine import infer, train_backtest

    config = default_config(
        data={"source": "demo", "demo_series": "synthetic", "synthetic_rows": 300, "lookback": 5},
        trademaster={"backend": "upstream", "epochs": 1, "replay_size": 2000,
                     "upstream": {"home": os.environ[HOME_ENV], "python": os.environ[PYTHON_ENV]}})
    events = []
    result = train_backtest(config, symbol="SYN", out_dir=tmp_path, progress=events.append)
    assert result_errors(result) == []  # train_backtest enforces this too; here it is checked on its own
    assert result["backend"] == "upstream" and result["upstream"]["commit"] == boundary.PINNED_COMMIT
    assert result["upstream"]["unmapped"] == boundary.UNMAPPED_KEYS
    assert set(result["upstream"]["processes"]) == {"train", "valid", "test"}
    assert [e["epoch"] for e in result["epochs"]] == [1] and result["chosen_epoch"] == 1
    assert any(e.get("line", "").startswith("Train Episode: [1/1]") for e in events)
    curve = pd.read_csv(result["equity_curve_path"])
    assert list(curve.columns[:5]) == ["date", "close", "position", "equity", "buy_and_hold"]
    assert curve["equity"].iloc[0] == config.trademaster.initial_cash
    test = result["metrics"]["test"]
    assert test["bars"] == len(curve) - 1 and test["bars_per_year"] == 252.0
    assert test["total_return"] == pytest.approx(curve["equity"].iloc[-1] / curve["equity"].iloc[0] - 1)
    assert result["excess_return"] == pytest.approx(test["total_return"] - result["metrics"]["buy_and_hold"]["total_return"])
    assert (Path(result["model_dir"]) / "best.pth").is_file()
    inference = infer(Path(result["model_dir"]), config, symbol="SYN")
    assert result_errors(inference) == []
    assert inference["backend"] == "upstream" and inference["action"] in ("short", "flat", "long")
    assert sum(inference["probabilities"].values()) == pytest.approx(1.0)
    assert inference["action"] == max(inference["q_values"], key=inference["q_values"].get)
