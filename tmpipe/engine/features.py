"""TradeMaster's algorithmic-trading features and the agent's observation windows."""

from __future__ import annotations

import numpy as np

from tmpipe.engine.bars import Bars

PRICE_COLUMNS = ["open", "high", "low", "close", "adjcp"]
MA_WINDOWS = (5, 10, 15, 20, 25, 30)
FEATURES = ["zopen", "zhigh", "zlow", "zadjcp", "zclose"] + [f"zd_{k}" for k in MA_WINDOWS]
TRADEMASTER_COLUMNS = ["tic", "date", *PRICE_COLUMNS, *FEATURES]


def add_z_features(frame: Bars) -> Bars:
    """Add TradeMaster's z-features computed from the prices, causally.

    zclose of the first bar is 0 and zd_k uses the bars available so far while fewer than k
    exist (TradeMaster back-fills instead, which leaks the future into the first k bars).
    """
    close = np.asarray(frame["close"], dtype=np.float64)
    z = {f"z{name}": frame[name] / close - 1 for name in ("open", "high", "low", "adjcp")}
    z["zclose"] = np.zeros_like(close)
    z["zclose"][1:] = close[1:] / close[:-1] - 1
    for k in MA_WINDOWS:
        z[f"zd_{k}"] = trailing_mean(close, k) / close - 1
    return frame.with_columns(**z)


def trailing_mean(values: np.ndarray, k: int) -> np.ndarray:
    """Mean of the last k values at each row, of all so far while fewer than k exist."""
    out = np.cumsum(values) / np.arange(1, len(values) + 1)
    if len(values) >= k:
        out[k - 1 :] = np.lib.stride_tricks.sliding_window_view(values, k).mean(axis=1)
    return out


def normalisation_stats(train: Bars) -> dict:
    """Per-feature mean and std of the training split (std floored so constants stay finite)."""
    values = train.matrix(FEATURES)
    std = values.std(axis=0)
    return {
        "mean": values.mean(axis=0).tolist(),
        "std": np.where(std > 1e-12, std, 1.0).tolist(),
    }


def observation_windows(frame: Bars, stats: dict, lookback: int) -> np.ndarray:
    """All windows at once: row i holds the normalised features of bars i..i+lookback-1.

    Shape (len(frame) - lookback + 1, lookback * len(FEATURES)), float32; the decision for
    row i is taken at the close of bar i + lookback - 1.
    """
    values = (frame.matrix(FEATURES) - np.asarray(stats["mean"])) / np.asarray(stats["std"])
    windows = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)  # (n, F, L)
    return np.ascontiguousarray(windows.transpose(0, 2, 1).reshape(len(windows), -1), dtype=np.float32)


def future_volatility(close: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Realised volatility of the next ``horizon`` log returns after each bar, and a validity mask.

    The auxiliary target of the DeepScalper head; the last bars, which lack a full horizon,
    are masked out of the loss.
    """
    log_returns = np.diff(np.log(close))
    target = np.zeros(len(close))
    valid = np.zeros(len(close), dtype=bool)
    if len(log_returns) >= horizon:
        ahead = np.lib.stride_tricks.sliding_window_view(log_returns, horizon)
        stds = ahead.std(axis=1) if horizon > 1 else np.abs(ahead[:, 0])
        target[: len(stds)] = stds
        valid[: len(stds)] = True
    return target, valid
