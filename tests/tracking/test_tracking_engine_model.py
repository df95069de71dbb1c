"""The registered pyfunc model serves the real builtin engine (one tiny training run)."""

from __future__ import annotations

import json

import pytest

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
    open_gate = {"alias": "champion", "require_beat_buy_and_hold": False, "max_drawdown": 1.0,
                 "require_skill": False, "beat_baselines": []}
    outcome = register_and_promote(
        run.run_id, "SYN", result["agent"], result, open_gate, "tmpipe", tracking_uri=tracking_uri
    )
    assert outcome["promoted"] is True

    promoted = load_promoted_model(tracking_uri, "tmpipe", "SYN", result["agent"], "champion", tmp_path / "dl")
    expected = infer(promoted.model_dir, config, symbol="SYN")
    served = mlflow.pyfunc.load_model(str(promoted.pyfunc_dir)).predict(
        pd.DataFrame([{"symbol": "SYN", "config_json": json.dumps(config)}])
    )
    assert served.to_dict(orient="records") == [
        {"symbol": "SYN", "as_of": str(expected["as_of"]), "action": expected["action"],
         "target_position": float(expected["target_position"]),
         "reference_price": float(expected["reference_price"])}
    ]
    assert promoted.engine_result["data_fingerprint"] == result["data_fingerprint"]
