"""Equity vs the baselines, drawdown and position panels, rendered headless (Agg)."""

from __future__ import annotations

from pathlib import Path

BASELINE_LABELS = {"buy_and_hold": "buy and hold", "flat": "always flat", "ma_crossover": "MA crossover"}


def plot_equity_curve(csv_path: str | Path, png_path: str | Path, *, title: str) -> Path:
    """Read the engine's equity CSV (date, close, position, equity, buy_and_hold[, flat, ma_crossover, fold]) and save a PNG.

    Panels: equity of the strategy and every baseline column present; drawdown of the strategy and
    buy-and-hold; the strategy's position. Walk-forward fold boundaries are marked when a fold column exists.
    """
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    curve = pd.read_csv(csv_path, parse_dates=["date"])
    dates = curve["date"]
    figure = Figure(figsize=(10, 8), dpi=100)
    canvas = FigureCanvasAgg(figure)
    equity_axes, drawdown_axes, position_axes = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1, 1]}
    )
    lines = {"equity": "strategy", **{k: v for k, v in BASELINE_LABELS.items() if k in curve}}
    for index, (column, label) in enumerate(lines.items()):
        equity_axes.plot(dates, curve[column], label=label, linewidth=1.4 if column == "equity" else 1.0,
                         alpha=1.0 if column == "equity" else 0.8, color=f"C{index}")
    if "fold" in curve:
        for start in dates[curve["fold"].diff().fillna(0) != 0]:
            for axes in (equity_axes, drawdown_axes, position_axes):
                axes.axvline(start, color="grey", linestyle=":", linewidth=0.8)
    equity_axes.set_ylabel("equity")
    equity_axes.set_title(title)
    equity_axes.legend(loc="upper left")
    equity_axes.grid(alpha=0.3)
    for index, (column, label) in enumerate((("equity", "strategy"), ("buy_and_hold", "buy and hold"))):
        series = curve[column]
        drawdown = series / series.cummax() - 1.0
        drawdown_axes.fill_between(dates, drawdown, 0.0, alpha=0.35, label=label, color=f"C{index}")
    drawdown_axes.set_ylabel("drawdown")
    drawdown_axes.legend(loc="lower left")
    drawdown_axes.grid(alpha=0.3)
    position_axes.step(dates, curve["position"], where="post", linewidth=1.0, color="C0")
    position_axes.set_ylabel("position")
    position_axes.grid(alpha=0.3)
    # Fixed margins for these fixed labels: tight_layout measured every text box (~0.2 s per task).
    # Date labels stay unrotated (years, or year-month, fit side by side): autofmt_xdate laid the
    # ticks out a second time to rotate them.
    figure.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.06, hspace=0.12)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.savefig(png_path)
    finally:
        # Figure and canvas reference each other, so only the cyclic GC would free them: in
        # `tmpipe run` (every symbol's tasks in one process) that can be many symbols later, each
        # waiting figure holding its 1000x800 RGBA buffer (3.2 MB). Free the buffer and artists now.
        canvas.renderer = None
        canvas._lastKey = None
        figure.clear()
    return png_path
