"""Point-in-time signals over a symbol's test window, so a new user sees a graded history at once.

The model is trained on the bars before the window only (its own train/valid/test splits all
end before the window's first bar), and each signal is inferred from the bars up to its own
``as_of``, then reviewed by the offline ``rules`` model. Signals are one horizon apart, so
following them is a strategy that could have been traded. Training and each inference clip the
data at a bar (``data.end`` set to the bar's timestamp), so on intraday data too a signal is for
its own bar, and the model never sees a bar of the window.

Each backfill has an MLflow run per symbol in the symbol's experiment (tagged
``tmpipe.kind=signals_backfill`` and without the ``airflow.*`` identity tags, so no DAG run's run
lookup finds it). It holds the backfill's parameters, its training metrics, the signals
(``backfill/signals.json``) and each signal's evidence pack (``backfill/evidence/<dag_run_id>.json``,
referenced by its trace); the signal and llm artifacts, and so their scores, link to it.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tmpipe.config.resolver import ResolvedConfig, resolve
from tmpipe.config.sections import EngineConfig
from tmpipe.errors import DataError
from tmpipe.signals.scoring import horizon_in_bars
from tmpipe.spec.model import Spec
from tmpipe.store.base import ArtifactStore
from tmpipe.store.models import ArtifactCreate
from tmpipe.symbols import validate_symbol

BACKFILL_PREFIX = "backfill__"
KIND_TAG = "tmpipe.kind"
BACKFILL_KIND = "signals_backfill"
BACKFILL_DAG_TAG = "tmpipe.backfill.dag_id"
SIGNALS_ARTIFACT = "backfill/signals.json"
EVIDENCE_DIR = "backfill/evidence"


@dataclass(frozen=True)
class Backfilled:
    symbol: str
    signals: int
    first_as_of: str | None
    last_as_of: str | None
    trained_until: str
    mlflow_run_id: str


def backfill(spec: Spec, symbol: str, store: ArtifactStore, *, epochs: int | None = None, max_signals: int | None = None,
             progress: Callable[[str], None] = lambda line: None) -> Backfilled:
    """Persist ``signal`` and ``llm`` artifacts (dag_run_id ``backfill__<as_of>``) for the symbol's test window."""
    from tmpipe.engine import infer, train_backtest
    from tmpipe.engine.bar_validation import iso
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
    trained_until = iso(before[-1])
    train_config = _with_data_end(config.engine, before[-1])
    if epochs is not None:
        train_config = train_config.model_copy(update={"trademaster": train_config.trademaster.model_copy(update={"epochs": epochs})})
    review_config = config.review.model_copy(
        update={"model_client": config.review.model_client.model_copy(update={"provider": "rules"})})
    run = BackfillRun.start(spec, config, symbol)
    progress(f"{symbol}: training on the bars up to {trained_until} (before the test window); MLflow run {run.run_id}")
    written: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tmpipe-backfill-") as scratch:
            engine_result = train_backtest(train_config, symbol=symbol, out_dir=Path(scratch) / "train")
            model_dir = Path(engine_result["model_dir"])
            for number, stamp in enumerate(picked, 1):
                inference = infer(model_dir, _with_data_end(config.engine, stamp), symbol=symbol)
                run_id = f"{BACKFILL_PREFIX}{inference['as_of']}"
                lineage = {"dag_id": spec.dag.dag_id, "dag_run_id": run_id, "mlflow_run_id": run.run_id,
                           "mlflow_experiment_id": run.experiment_id, "mlflow_run_url": run.url, "model_uri": None,
                           "data_sha256": engine_result["data_fingerprint"]["sha256"]}
                evidence = build_evidence(engine_result, inference, symbol=symbol, lineage=lineage)
                outcome = review_signal(evidence, review_config, symbol=symbol, evidence_uri=run.store_evidence(run_id, evidence))
                for kind, content in (("signal", outcome.signal), ("llm", outcome.trace)):
                    saved = store.save_artifact(ArtifactCreate(dag_id=spec.dag.dag_id, dag_run_id=run_id, symbol=symbol,
                                                               artifact_type=kind, content=content))
                    store.set_lineage(saved.id, run.run_id, run.experiment_id)
                written.append(outcome.signal)
                if number % 10 == 0 or number == len(picked):
                    progress(f"{symbol}: {number}/{len(picked)} signals (as of {inference['as_of']})")
        run.finish(engine_result, written, trained_until=trained_until, step_bars=step, epochs=train_config.trademaster.epochs)
    except BaseException:
        run.fail()
        raise
    as_of = [signal["as_of"] for signal in written]
    return Backfilled(symbol, len(written), as_of[0] if as_of else None, as_of[-1] if as_of else None, trained_until,
                      run.run_id)


@dataclass(frozen=True)
class BackfillRun:
    """The backfill's MLflow run of one symbol, in the symbol's experiment."""

    tracking_uri: str
    run_id: str
    experiment_id: str
    url: str | None

    @classmethod
    def start(cls, spec: Spec, config: ResolvedConfig, symbol: str) -> BackfillRun:
        from datetime import datetime, timezone

        from tmpipe import __version__
        from tmpipe.home import tmpipe_home
        from tmpipe.tracking import client_for, get_or_create_experiment, resolve_tracking_uri, run_url
        from tmpipe.tracking.run_identity import TAG_ENGINE, TAG_SPEC_SHA256, TAG_SYMBOL, TAG_VERSION

        mlflow_cfg = config.mlflow
        uri = resolve_tracking_uri(mlflow_cfg, tmpipe_home())
        experiment_id = get_or_create_experiment(uri, mlflow_cfg.experiment)
        # No airflow.dag_id/dag_run_id tags: a DAG run's lookup of its symbol's run never finds this one.
        tags = {KIND_TAG: BACKFILL_KIND, TAG_SYMBOL: symbol, BACKFILL_DAG_TAG: spec.dag.dag_id, TAG_SPEC_SHA256: spec.sha256,
                TAG_VERSION: __version__, TAG_ENGINE: config.trademaster.backend}
        started = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        run = client_for(uri).create_run(experiment_id, run_name=f"{symbol}-backfill-{started}", tags=tags)
        return cls(uri, run.info.run_id, experiment_id, run_url(uri, experiment_id, run.info.run_id))

    def store_evidence(self, dag_run_id: str, evidence: dict) -> str:
        """The signal's evidence pack, stored once in the run (its canonical bytes); its ``runs:/`` URI."""
        from tmpipe.review.evidence_ref import evidence_bytes, run_artifact_uri
        from tmpipe.tracking import client_for

        path = f"{EVIDENCE_DIR}/{re.sub(r'[^A-Za-z0-9_.-]', '_', dag_run_id)}.json"
        client_for(self.tracking_uri).log_text(self.run_id, evidence_bytes(evidence).decode("utf-8"), path)
        return run_artifact_uri(self.run_id, path)

    def finish(self, engine_result: dict, signals: list[dict], *, trained_until: str, step_bars: int, epochs: int) -> None:
        from mlflow.entities import Metric, Param

        from tmpipe.tracking import client_for

        client = client_for(self.tracking_uri)
        params = {"backfill.trained_until": trained_until, "backfill.step_bars": step_bars, "backfill.epochs": epochs,
                  "backfill.signals": len(signals), "data.sha256": engine_result["data_fingerprint"]["sha256"],
                  "backfill.first_as_of": signals[0]["as_of"] if signals else None,
                  "backfill.last_as_of": signals[-1]["as_of"] if signals else None}
        now = int(time.time() * 1000)
        test = engine_result["metrics"]["test"]
        metrics = [Metric(f"test.{key}", float(value), now, 0) for key, value in test.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)]
        client.log_batch(self.run_id, metrics=metrics + [Metric("backfill.signals", float(len(signals)), now, 0)],
                         params=[Param(key, str(value)) for key, value in params.items()])
        client.log_text(self.run_id, json.dumps(signals, indent=2), SIGNALS_ARTIFACT)
        client.set_terminated(self.run_id, "FINISHED")

    def fail(self) -> None:
        from tmpipe.tracking import client_for

        client_for(self.tracking_uri).set_terminated(self.run_id, "FAILED")


def _with_data_end(config: EngineConfig, bar: np.datetime64) -> EngineConfig:
    """The config with the data cut at ``bar``, inclusive (its full timestamp, so intraday data too is cut at the bar)."""
    end = str(np.datetime_as_string(np.asarray(bar).astype("datetime64[ns]"), unit="ns"))
    return config.model_copy(update={"data": config.data.model_copy(update={"end": end})})
