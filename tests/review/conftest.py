"""Engine and inference results as plain dicts following docs/contracts.md, and a loopback fake endpoint."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

import pytest

from tmpipe.config.sections import ReviewConfig

LINEAGE = {"dag_id": "trademaster_autogen_pipeline_workflow", "dag_run_id": "manual__2024-06-28",
           "mlflow_run_id": "0123abcd", "mlflow_experiment_id": "7", "model_uri": "models:/tmpipe.AAPL.deepscalper/3",
           "data_sha256": None}


def _metrics(total, sharpe, drawdown, vol=0.22):
    return {"total_return": total, "annual_return": total * 2, "annual_volatility": vol, "sharpe": sharpe,
            "sortino": sharpe * 1.3, "max_drawdown": drawdown, "calmar": 0.8, "win_rate": 0.54, "turnover": 3.1,
            "bars": 126, "bars_per_year": 252}


def write_equity_curve(path: Path, rows: int = 60) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "close", "position", "equity", "buy_and_hold"])
        for i in range(rows):
            close = 180 + 5 * math.sin(i / 6) + 0.2 * i
            writer.writerow([f"2024-04-{i % 28 + 1:02d}" if i < 28 else f"2024-05-{i % 28 + 1:02d}"
                             if i < 56 else f"2024-06-{i % 28 + 1:02d}", round(close, 4), 1, 1 + i / 500, 1 + i / 600])
    return path


def _load_sibling(name: str):
    """Load a helper module next to this file (the suite runs with --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location(f"tmpipe_review_tests_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def endpoint_kit():
    """The fake_endpoint module: FakeEndpoint (a loopback chat-completions server) and Reply."""
    return _load_sibling("fake_endpoint")


@pytest.fixture
def lineage() -> dict:
    return dict(LINEAGE)


@pytest.fixture
def configure():
    return with_changes


def _report(total, sharpe):
    return {"total_return": total, "annual_return": total, "total_return_gross": total + 0.01,
            "annual_return_gross": total + 0.01, "excess_return": 0.04, "information_ratio": 0.5,
            "annual_volatility": 0.2, "sharpe": sharpe, "sortino": 1.6, "calmar": 0.7, "max_drawdown": 0.18,
            "max_drawdown_bars": 30, "turnover": 0.05, "cost_drag": 0.01, "exposure": 0.7, "win_rate": 0.53,
            "profit_factor": 1.2, "trades": 12, "bars": 600}


def skill_blocks(p_value: float) -> dict:
    """report, baselines and skill of a builtin engine result (schemas/engine_result.schema.json)."""
    difference = {"estimate": 0.55, "ci_low": -0.2, "ci_high": 1.3}
    return {
        "report": {"folds": [_report(0.12, 1.25)], "pooled": _report(0.12, 1.25)},
        "baselines": {name: {"parameters": {}, "folds": [_report(0.08, s)], "pooled": _report(0.08, s)}
                      for name, s in (("buy_and_hold", 0.7), ("flat", None), ("ma_crossover", 0.4))},
        "skill": {"p_value": p_value, "method": "circular_shift",
                  "parameters": {"statistic": "Sharpe", "min_shift": 20, "shifts": 1000, "bars": 600},
                  "observed_sharpe": 1.25,
                  "sharpe_difference": {"method": "circular_block_bootstrap", "block": 20, "samples": 1000,
                                        "confidence": 0.95,
                                        "baselines": dict.fromkeys(("buy_and_hold", "flat", "ma_crossover"), difference)},
                  "deflated_sharpe": {"value": 0.96, "trials": 3, "benchmark_sharpe_per_bar": 0.02,
                                      "sharpe_per_bar": 0.08, "skewness": -0.1, "kurtosis": 4.0}},
    }


@pytest.fixture
def engine_result(tmp_path: Path) -> dict:
    return {
        "schema_version": 1, "kind": "train_backtest", "backend": "builtin", "symbol": "AAPL", "agent": "deepscalper",
        "epochs": [{"epoch": 0, "loss": 0.1, "train_return": 0.05, "valid_return": 0.02, "valid_sharpe": 0.9,
                    "epsilon": 0.1, "seconds": 1.2}],
        "chosen_epoch": 0, "chosen_reason": "best validation sharpe",
        "metrics": {"valid": _metrics(0.04, 0.9, 0.12), "test": _metrics(0.12, 1.25, 0.18),
                    "buy_and_hold": _metrics(0.08, 0.7, 0.22)},
        "excess_return": 0.04,
        "equity_curve_path": str(write_equity_curve(tmp_path / "equity_curve.csv")),
        "model_dir": str(tmp_path / "model"),
        "last_action": {"action": "long", "target_position": 1.0, "date": "2024-06-28"},
        "config": {"data": {}, "trademaster": {}},
        "data_fingerprint": {"sha256": "ab" * 32, "first_timestamp": "2019-01-02", "last_timestamp": "2024-06-28",
                             "rows": 1383},
        "splits": {}, "wall_time_seconds": 12.5, "seed": 7, "torch_threads": 1,
        **skill_blocks(p_value=0.01),
    }


@pytest.fixture
def inference_result(tmp_path: Path) -> dict:
    return {
        "schema_version": 1, "kind": "inference", "backend": "builtin", "symbol": "AAPL", "as_of": "2024-06-28",
        "action": "long", "target_position": 1.0, "q_values": {"short": -0.2, "flat": 0.1, "long": 0.6},
        "probabilities": {"short": 0.17, "flat": 0.21, "long": 0.62}, "reference_price": 210.62,
        "window": {"first_timestamp": "2024-04-01", "last_timestamp": "2024-06-28", "bars": 60},
        "market": {"last_close": 210.62, "return_1d": 0.004, "return_20d": 0.061,
                   "realised_volatility_20d": 0.24, "trend_slope_20d": 0.0021},
        "model_dir": str(tmp_path / "model"),
    }


@pytest.fixture
def evidence(engine_result: dict, inference_result: dict) -> dict:
    from tmpipe.review import build_evidence

    return build_evidence(engine_result, inference_result, symbol="AAPL", lineage=LINEAGE)


@pytest.fixture
def review_config() -> ReviewConfig:
    return ReviewConfig.from_values({})


def with_changes(config: ReviewConfig, **changes) -> ReviewConfig:
    """A copy of ``config`` with dotted keys (``thresholds__max_drawdown``) set, built and checked again."""
    out = config.model_dump(mode="json")
    for dotted, value in changes.items():
        target = out
        *parents, last = dotted.split("__")
        for parent in parents:
            target = target[parent]
        target[last] = value
    return ReviewConfig.from_values(out)
