"""Point-in-time signals over a symbol's test window, so a new user sees a graded history at once.

The model is trained on the bars before the window only (its own train/valid/test splits all
end before the window's first bar), and each signal is inferred from the bars up to its own
``as_of``, then reviewed by the offline ``rules`` model. Signals are one horizon apart, so
following them is a strategy that could have been traded. Inference clips the data by day, so
on intraday data a signal is for the last bar of its day.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tmpipe.config.resolver import resolve
from tmpipe.config.sections import EngineConfig
from tmpipe.errors import DataError
from tmpipe.signals.scoring import horizon_in_bars
from tmpipe.spec.model import Spec
from tmpipe.store.base import ArtifactStore
from tmpipe.store.models import ArtifactCreate
from tmpipe.symbols import validate_symbol

BACKFILL_PREFIX = "backfill__"


@dataclass(frozen=True)
class Backfilled:
    symbol: str
    signals: int
    first_as_of: str | None
    last_as_of: str | None
    trained_until: str


def backfill(spec: Spec, symbol: str, store: ArtifactStore, *, epochs: int | None = None, max_signals: int | None = None,
             progress: Callable[[str], None] = lambda line: None) -> Backfilled:
    """Persist ``signal`` and ``llm`` artifacts (dag_run_id ``backfill__<as_of>``) for the symbol's test window."""
    from tmpipe.engine import infer, train_backtest
    from tmpipe.engine.data import load_dataset
    from tmpipe.review import build_evidence, review_signal

    symbol = validate_symbol(symbol)
    config = resolve(spec, symbol)
    dataset = load_dataset(config.data, symbol)
    window = dataset.splits["test"].own["date"]
    before = dataset.frame["date"][dataset.frame["date"] < window[0]]
    if len(before) == 0:
        raise DataError(f"{symbol}: no bars before the test window to train on")
    step = horizon_in_bars(config.review.horizon, dataset.bars_per_year)
    picked = window[::step][:max_signals] if max_signals else window[::step]
    trained_until = _day(before[-1])
    train_config = _with_data_end(config.engine, trained_until)
    if epochs is not None:
        train_config = train_config.model_copy(update={"trademaster": train_config.trademaster.model_copy(update={"epochs": epochs})})
    review_config = config.review.model_copy(
        update={"model_client": config.review.model_client.model_copy(update={"provider": "rules"})})
    progress(f"{symbol}: training on the bars up to {trained_until} (before the test window)")
    with tempfile.TemporaryDirectory(prefix="tmpipe-backfill-") as scratch:
        engine_result = train_backtest(train_config, symbol=symbol, out_dir=Path(scratch) / "train")
        model_dir = Path(engine_result["model_dir"])
        written = []
        for number, stamp in enumerate(picked, 1):
            day = _day(stamp)
            inference = infer(model_dir, _with_data_end(config.engine, day), symbol=symbol)
            run_id = f"{BACKFILL_PREFIX}{inference['as_of']}"
            lineage = {"dag_id": spec.dag.dag_id, "dag_run_id": run_id, "mlflow_run_id": None,
                       "mlflow_experiment_id": None, "model_uri": None,
                       "data_sha256": engine_result["data_fingerprint"]["sha256"]}
            evidence = build_evidence(engine_result, inference, symbol=symbol, lineage=lineage)
            outcome = review_signal(evidence, review_config, symbol=symbol)
            for kind, content in (("signal", outcome.signal), ("llm", outcome.trace)):
                store.save_artifact(ArtifactCreate(dag_id=spec.dag.dag_id, dag_run_id=run_id, symbol=symbol,
                                                   artifact_type=kind, content=content))
            written.append(inference["as_of"])
            if number % 10 == 0 or number == len(picked):
                progress(f"{symbol}: {number}/{len(picked)} signals (as of {inference['as_of']})")
    return Backfilled(symbol, len(written), written[0] if written else None, written[-1] if written else None,
                      trained_until)


def _with_data_end(config: EngineConfig, day: str) -> EngineConfig:
    return config.model_copy(update={"data": config.data.model_copy(update={"end": day})})


def _day(stamp: np.datetime64) -> str:
    return str(np.datetime_as_string(stamp.astype("datetime64[D]")))
