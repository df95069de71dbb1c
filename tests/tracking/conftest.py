"""Real stores and contract-shaped engine results (plain dicts, no engine import)."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pytest

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


def make_engine_result(
    out_dir: Path,
    symbol: str = "AAPL",
    *,
    test_return: float = 0.12,
    bh_return: float = 0.05,
    test_drawdown: float = 0.10,
    bundle_text: str = "weights-v1",
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
    return dict(PROMOTION)
