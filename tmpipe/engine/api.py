"""The engine contract (docs/contracts.md): ``train_backtest`` and ``infer`` pick the backend and
check every result against schemas/engine_result.schema.json."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tmpipe.config.sections import EngineConfig
from tmpipe.engine.defaults import result_errors
from tmpipe.errors import EngineError
from tmpipe.symbols import validate_symbol


def _backend(config: EngineConfig):
    """The backend module; upstream's is imported only when chosen (it needs the TradeMaster checkout)."""
    if not isinstance(config, EngineConfig):
        raise TypeError(f"the engine takes an EngineConfig (tmpipe.config.sections), not {type(config).__name__}; "
                        "build one with EngineConfig.from_values(...) or ResolvedConfig.engine")
    if config.trademaster.backend == "upstream":
        from tmpipe.engine import upstream

        return upstream.train_backtest_upstream, upstream.infer_upstream
    from tmpipe.engine import builtin

    return builtin.train_backtest, builtin.infer


def checked_result(result: dict) -> dict:
    """The result itself if it conforms to schemas/engine_result.schema.json, else EngineError naming the keys.

    Every backend's result passes here, so downstream stages can rely on the contract.
    """
    errors = result_errors(result)
    if errors:
        where = f"{result.get('backend', '?')} {result.get('kind', '?')}" if isinstance(result, dict) else "engine"
        raise EngineError(f"{where} result breaks schemas/engine_result.schema.json: " + "; ".join(errors))
    return result


def train_backtest(config: EngineConfig, *, symbol: str, out_dir: Path, progress: Callable[[dict], None] | None = None) -> dict:
    """Train on the train split, pick the epoch by validation, backtest on test; see the contract."""
    validate_symbol(symbol)
    run, _ = _backend(config)
    return checked_result(run(config, symbol=symbol, out_dir=out_dir, progress=progress))


def infer(model_dir: Path, config: EngineConfig, *, symbol: str) -> dict:
    """Replay the saved policy over the test window of freshly loaded data; the last bar's action."""
    validate_symbol(symbol)
    _, run = _backend(config)
    return checked_result(run(model_dir, config, symbol=symbol))


__all__ = ["train_backtest", "infer", "checked_result"]
