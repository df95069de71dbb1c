"""Real stores and contract-shaped engine results (plain dicts, no engine import)."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pytest

from tmpipe.config.sections import PromotionConfig
from tmpipe.tracking import TrackingContext, embedded_tracking_uri
from tmpipe.tracking import retry


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Keep the retry policy but shorten its waits so failure tests stay fast."""
    monkeypatch.setattr(retry, "ATTEMPTS", 3)
    monkeypatch.setattr(retry, "WAIT_INITIAL_SECONDS", 0.01)
    monkeypatch.setattr(retry, "WAIT_MAX_SECONDS", 0.05)


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory) -> Path:
    """An empty, fully migrated SQLite store, built once (migrations take seconds)."""
    from tmpipe.tracking import client_for

    uri = embedded_tracking_uri(tmp_path_factory.mktemp("template"))
    client_for(uri)
    return Path(uri.removeprefix("sqlite:///"))


@pytest.fixture
def tracking_uri(tmp_path: Path, migrated_store: Path) -> str:
    uri = embedded_tracking_uri(tmp_path / "home")
    shutil.copyfile(migrated_store, uri.removeprefix("sqlite:///"))
    return uri


def make_context(tracking_uri: str, symbol: str = "AAPL", **overrides) -> TrackingContext:
    fields = dict(
        tracking_uri=tracking_uri,
        experiment="tmpipe-tests",
        dag_id="trademaster_autogen_pipeline_workflow",
        dag_run_id="manual__2024-05-01T12:30:00+00:00",
        symbol=symbol,
        mode="both",
        engine_backend="builtin",
        spec_sha256="ab" * 32,
        project_version="0.1.0",
        map_index=0,
        try_number=1,
        task_url="http://127.0.0.1:8080/dags/x/runs/y/tasks/train_backtest?map_index=0",
    )
    fields.update(overrides)
    return TrackingContext(**fields)


def _metrics(total_return: float, max_drawdown: float) -> dict:
    return {
        "total_return": total_return,
        "annual_return": total_return * 2,
        "annual_volatility": 0.2,
        "sharpe": 1.1,
        "sortino": 1.5,
        "max_drawdown": max_drawdown,
        "calmar": 0.9,
        "win_rate": 0.52,
        "turnover": 3.0,
        "bars": 40,
        "bars_per_year": 252,
    }


def report_metrics(total_return: float, sharpe: float | None) -> dict:
    """A per-symbol report block (schemas/engine_result.schema.json#/$defs/report_metrics)."""
    return {
        "total_return": total_return, "annual_return": total_return * 2, "total_return_gross": total_return + 0.01,
        "annual_return_gross": total_return * 2 + 0.02, "excess_return": 0.0, "information_ratio": None,
        "annual_volatility": 0.2 if sharpe is not None else 0.0, "sharpe": sharpe, "sortino": None, "calmar": None,
        "max_drawdown": 0.1, "max_drawdown_bars": 5, "turnover": 0.1, "cost_drag": 0.02, "exposure": 0.6,
        "win_rate": 0.52, "profit_factor": 1.3, "trades": 4, "bars": 40,
    }


def evaluation_blocks(sharpe: float, bh_sharpe: float, p_value: float) -> dict:
    """report, baselines and skill of a builtin result, with the figures the gate reads."""
    difference = {"estimate": 0.1, "ci_low": -0.5, "ci_high": 0.7}
    span = {"first_timestamp": "2024-01-02", "last_timestamp": "2024-03-12", "rows": 60}
    return {
        "walk_forward": {
            "folds": [{"fold": 1, "train": span, "valid": span, "test": span, "chosen_epoch": 3,
                       "chosen_reason": "best pooled validation Sharpe", "epochs_run": 3}],
            "selection": "pooled validation", "split_directory": False,
            "deployed": {"fold": 1, "epoch": 3, "trained_on": span, "selected_on": [span], "inference_window": span,
                         "description": "the network of fold 1 at epoch 3"},
        },
        "report": {"folds": [report_metrics(0.1, sharpe)], "pooled": report_metrics(0.1, sharpe)},
        "baselines": {name: {"parameters": {}, "folds": [report_metrics(0.05, value)], "pooled": report_metrics(0.05, value)}
                      for name, value in (("buy_and_hold", bh_sharpe), ("flat", None), ("ma_crossover", 0.3))},
        "skill": {
            "p_value": p_value, "method": "circular_shift",
            "parameters": {"statistic": "Sharpe", "min_shift": 20, "shifts": 999, "bars": 40},
            "observed_sharpe": sharpe,
            "sharpe_difference": {"method": "circular_block_bootstrap", "block": 20, "samples": 1000, "confidence": 0.95,
                                  "baselines": {n: difference for n in ("buy_and_hold", "flat", "ma_crossover")}},
            "deflated_sharpe": {"value": 0.97, "trials": 3, "benchmark_sharpe_per_bar": 0.01, "sharpe_per_bar": 0.08,
                                "skewness": 0.0, "kurtosis": 3.0},
        },
    }


def make_engine_result(
    out_dir: Path,
    symbol: str = "AAPL",
    *,
    test_return: float = 0.12,
    bh_return: float = 0.05,
    test_drawdown: float = 0.10,
    bundle_text: str = "weights-v1",
    skill_p_value: float = 0.01,
    sharpe: float = 1.1,
    bh_sharpe: float = 0.6,
) -> dict:
    """A train_backtest result per docs/contracts.md with real files behind its paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = out_dir / "model"  # as the engine names it; the pyfunc model must rename it
    (model_dir / "nested").mkdir(parents=True, exist_ok=True)
    (model_dir / "weights.pt").write_bytes(bundle_text.encode() + bytes(range(256)))
    (model_dir / "nested" / "features.json").write_text('{"features": ["zopen", "zclose"]}')
    curve_path = out_dir / "equity_curve.csv"
    with curve_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "close", "position", "equity", "buy_and_hold"])
        for day in range(40):
            close = 100 + 5 * math.sin(day / 5) + day * 0.1
            writer.writerow(
                [f"2024-02-{day % 28 + 1:02d}" if day < 28 else f"2024-03-{day - 27:02d}",
                 round(close, 4), 1 if day % 7 else 0,
                 round(1 + 0.003 * day + 0.02 * math.sin(day / 3), 6), round(close / 100, 6)]
            )
    epochs = [
        {"epoch": e, "loss": 1.0 / e, "train_return": 0.01 * e, "valid_return": 0.02 * e,
         "valid_sharpe": 0.3 * e, "epsilon": 0.5 / e, "seconds": 0.4}
        for e in range(1, 4)
    ]
    return {
        "schema_version": 1,
        "kind": "train_backtest",
        "backend": "builtin",
        "symbol": symbol,
        "agent": "dqn",
        "epochs": epochs,
        "chosen_epoch": 3,
        "chosen_reason": "best valid_sharpe",
        "metrics": {
            "valid": _metrics(0.08, 0.07),
            "test": _metrics(test_return, test_drawdown),
            "buy_and_hold": _metrics(bh_return, 0.2),
        },
        "excess_return": test_return - bh_return,
        "equity_curve_path": str(curve_path),
        "model_dir": str(model_dir),
        "last_action": {"action": "long", "target_position": 1.0, "date": "2024-03-12"},
        "config": {"data": {"source": "csv"}, "trademaster": {"epochs": 3}},
        "data_fingerprint": {"sha256": "cd" * 32, "first_timestamp": "2020-01-02",
                             "last_timestamp": "2024-03-12", "rows": 1060},
        "splits": {
            "train": {"first_timestamp": "2020-01-02", "last_timestamp": "2022-12-30", "rows": 750},
            "valid": {"first_timestamp": "2023-01-03", "last_timestamp": "2023-12-29", "rows": 250},
            "test": {"first_timestamp": "2024-01-02", "last_timestamp": "2024-03-12", "rows": 60},
        },
        **evaluation_blocks(sharpe, bh_sharpe, skill_p_value),
        "wall_time_seconds": 4.2,
        "seed": 7,
        "torch_threads": 1,
    }


PROMOTION = {"alias": "champion", "require_beat_buy_and_hold": True, "max_drawdown": 0.5}


@pytest.fixture
def context_factory(tracking_uri):
    def factory(symbol: str = "AAPL", **overrides) -> TrackingContext:
        return make_context(overrides.pop("tracking_uri", tracking_uri), symbol, **overrides)

    return factory


@pytest.fixture
def engine_result_factory(tmp_path):
    return lambda name="engine", **kwargs: make_engine_result(tmp_path / name, **kwargs)


@pytest.fixture
def promotion():
    return PromotionConfig.from_values(PROMOTION)
