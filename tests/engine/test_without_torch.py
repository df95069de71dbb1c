"""The default install has no torch: the engine trains, saves, loads and infers without it."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_train_backtest_and_infer_run_with_torch_unimportable(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        from tmpipe.engine import infer, train_backtest
        from tmpipe.engine.defaults import default_config
        config = default_config(data={{"source": "demo", "demo_series": "synthetic", "synthetic_rows": 200}},
                                trademaster={{"epochs": 1, "torch_threads": 1}})
        result = train_backtest(config, symbol="SYN", out_dir={str(tmp_path)!r})
        print(infer(result["model_dir"], config, symbol="SYN")["action"])
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] in {"short", "flat", "long"}
