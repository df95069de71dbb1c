"""A symbol's track record as a table and a PNG of following its signals against buy-and-hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tmpipe.signals.scoring import following_values


def equity_paths(scores: list[dict]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Horizon-end dates and the compounded value of following the signals and of buy-and-hold."""
    ordered = sorted(scores, key=lambda s: s["as_of"])
    return ([s["horizon_end_bar"] for s in ordered], following_values(ordered),
            following_values(ordered, long_only=True))


def plot_record(scores: list[dict], png_path: str | Path, *, title: str) -> Path:
    """Save the PNG: value of 1 following the signals vs buy-and-hold, and the hit/miss of each signal."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ends, following, holding = equity_paths(scores)
    dates = pd.to_datetime(ends)
    figure = Figure(figsize=(10, 6), dpi=100)
    FigureCanvasAgg(figure)
    value_axes, hit_axes = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    value_axes.plot(dates, following, label="following the signals", linewidth=1.4, color="C0")
    value_axes.plot(dates, holding, label="buy and hold", linewidth=1.0, alpha=0.8, color="C1")
    value_axes.set_ylabel("value of 1")
    value_axes.set_title(title)
    value_axes.legend(loc="upper left")
    value_axes.grid(alpha=0.3)
    ordered = sorted(scores, key=lambda s: s["as_of"])
    outcome = [np.nan if s["direction_right"] is None else (1.0 if s["direction_right"] else -1.0) for s in ordered]
    hit_axes.bar(dates, outcome, width=2, color=["C2" if o > 0 else "C3" for o in np.nan_to_num(outcome)])
    hit_axes.set_yticks([-1, 1], ["wrong", "right"])
    hit_axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png_path)
    return png_path
