"""The registered pyfunc model serves the real builtin engine (one tiny training run)."""

from __future__ import annotations

import json

import pytest

from tmpipe.config.sections import PromotionConfig
from tmpipe.tracking import (
    get_or_create_run,
    load_promoted_model,
    log_train_backtest,
    register_and_promote,
)


@pytest.mark.slow
def test_promoted_pyfunc_model_predicts_like_engine_infer(context_factory, tracking_uri, tmp_path):
    pd = pytest.importorskip("pandas")
    from tmpipe.engine import infer, train_backtest
    from tmpipe.engine.defaults import default_config

    import mlflow.pyfunc

    config = default_config(data={"demo_series": "synthetic"}, trademaster={"epochs": 1})
    result = train_backtest(config, symbol="SYN", out_dir=tmp_path / "engine")
    run = get_or_create_run(context_factory(symbol="SYN"))
    log_train_backtest(run.run_id, result, tmp_path / "out", tracking_uri=tracking_uri)
    open_gate = PromotionConfig.from_values({"alias": "champion", "require_beat_buy_and_hold": False, "max_drawdown": 1.0,
                                             "require_skill": False, "beat_baselines": []})
    outcome = register_and_promote(
        run.run_id, "SYN", result["agent"], result, open_gate, "tmpipe", tracking_uri=tracking_uri
    )
    assert outcome["promoted"] is True

    promoted = load_promoted_model(tracking_uri, "tmpipe", "SYN", result["agent"], "champion", tmp_path / "dl")
    expected = infer(promoted.model_dir, config, symbol="SYN")
    served = mlflow.pyfunc.load_model(str(promoted.pyfunc_dir)).predict(
        pd.DataFrame([{"symbol": "SYN", "config_json": json.dumps(config.model_dump(mode="json"))}])
    )
    assert served.to_dict(orient="records") == [
        {"symbol": "SYN", "as_of": str(expected["as_of"]), "action": expected["action"],
         "target_position": float(expected["target_position"]),
         "reference_price": float(expected["reference_price"])}
    ]
    assert promoted.engine_result["data_fingerprint"] == result["data_fingerprint"]


def test_saving_the_model_skips_mlflows_environment_scan(tmp_path):
    """The pins come from this environment; MLflow's check of them scanned every distribution (1.3 s per task)."""
    import subprocess
    import sys

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "weights.npz").write_bytes(b"not read")
    script = (
        "import sys\n"
        "from mlflow.utils import requirements_utils\n"
        "from tmpipe.tracking.bundle_model import save_bundle_model\n"
        "from tmpipe.tracking.bundle_paths import BUNDLE_SUBDIR\n"
        "from tmpipe.tracking.stage_logging import _requirements\n"
        "dest = save_bundle_model(sys.argv[1], sys.argv[2], requirements=_requirements())\n"
        "assert (dest / BUNDLE_SUBDIR / 'weights.npz').is_file()\n"
        "assert (dest / 'requirements.txt').read_text().count('==') >= 3\n"
        "print(requirements_utils._MODULES_TO_PACKAGES is None)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(bundle), str(tmp_path / "model")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "True"
