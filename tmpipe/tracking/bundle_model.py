"""The engine's model bundle as an MLflow pyfunc model, so the registry can hold it.

The bundle directory is stored unchanged under ``artifacts/bundle`` of the pyfunc model;
``predict`` delegates to ``tmpipe.engine.infer`` (imported lazily: registering a model
does not need the engine, only serving it does). Imported only when a model is logged.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import mlflow.pyfunc
import mlflow.utils.environment
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema

from tmpipe.tracking.bundle_paths import BUNDLE_ARTIFACT


SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "symbol"), ColSpec("string", "config_json")]),
    outputs=Schema(
        [
            ColSpec("string", "symbol"),
            ColSpec("string", "as_of"),
            ColSpec("string", "action"),
            ColSpec("double", "target_position"),
            ColSpec("double", "reference_price"),
        ]
    ),
)


class TradingBundleModel(PythonModel):
    """One row per (symbol, resolved stage config as JSON) -> the engine's latest action."""

    def load_context(self, context) -> None:
        self.bundle_dir = Path(context.artifacts[BUNDLE_ARTIFACT])

    # The DataFrame hint tells MLflow to validate against SIGNATURE, not to infer from hints.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from tmpipe.config.sections import EngineConfig
        from tmpipe.engine import infer

        rows = []
        for record in model_input.to_dict(orient="records"):
            config = EngineConfig.from_values(json.loads(record["config_json"]))  # its data and trademaster sections
            result = infer(self.bundle_dir, config, symbol=record["symbol"])
            rows.append(
                {
                    "symbol": str(result["symbol"]),
                    "as_of": str(result["as_of"]),
                    "action": str(result["action"]),
                    "target_position": float(result["target_position"]),
                    "reference_price": float(result["reference_price"]),
                }
            )
        return pd.DataFrame(rows, columns=SIGNATURE.outputs.input_names())


def save_bundle_model(model_dir: str | Path, dest: str | Path, *, requirements: list[str]) -> Path:
    """Write a pyfunc model directory at ``dest`` that embeds the bundle at ``model_dir``.

    ``requirements`` are pins read from this environment, given explicitly so MLflow neither
    spawns a process to infer them nor scans the environment to check them.
    """
    dest = Path(dest)
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    previous_level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)  # the CloudPickle advice; the class is pickled by reference
    try:
        _save(model_dir, dest, requirements)
    finally:
        pyfunc_log.setLevel(previous_level)
    return dest


def _save(model_dir: str | Path, dest: Path, requirements: list[str]) -> None:
    # MLflow stores an artifact directory under its own base name, so stage the bundle as
    # ``bundle`` to make it land at BUNDLE_SUBDIR whatever the engine called its folder.
    with tempfile.TemporaryDirectory(prefix="tmpipe-bundle-") as staging:
        staged = Path(staging) / BUNDLE_ARTIFACT
        shutil.copytree(model_dir, staged)
        _save_pyfunc(staged, dest, requirements)


@contextmanager
def _no_requirement_mismatch_scan():
    """Skip MLflow's check that the pins match this environment: they were read from it.

    The check maps every installed distribution's files to modules (about 1.3 s, once per
    process, so once per Airflow task that logs a model).
    """
    module = mlflow.utils.environment
    check = getattr(module, "warn_dependency_requirement_mismatches", None)
    if check is None:  # another MLflow version: nothing to skip
        yield
        return
    module.warn_dependency_requirement_mismatches = lambda model_requirements: None
    try:
        yield
    finally:
        module.warn_dependency_requirement_mismatches = check


def _save_pyfunc(model_dir: Path, dest: Path, requirements: list[str]) -> None:
    with warnings.catch_warnings(), _no_requirement_mismatch_scan():
        # predict needs the engine and market data, so there is no input example to run.
        warnings.filterwarnings("ignore", message=".*input_example.*")
        mlflow.pyfunc.save_model(
            path=str(dest),
            python_model=TradingBundleModel(),
            artifacts={BUNDLE_ARTIFACT: str(model_dir)},
            signature=SIGNATURE,
            pip_requirements=requirements,
        )
