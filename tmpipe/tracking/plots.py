"""Equity-vs-buy-and-hold chart with a drawdown panel, rendered headless (Agg)."""

from __future__ import annotations

from pathlib import Path


def plot_equity_curve(csv_path: str | Path, png_path: str | Path, *, title: str) -> Path:
    """Read the engine's equity CSV (date, close, position, equity, buy_and_hold) and save a PNG."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    curve = pd.read_csv(csv_path, parse_dates=["date"])
    dates = curve["date"]
    figure = Figure(figsize=(10, 6), dpi=100)
    FigureCanvasAgg(figure)
    equity_axes, drawdown_axes = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    colours = {"equity": "C0", "buy_and_hold": "C1"}
    equity_axes.plot(dates, curve["equity"], label="strategy", linewidth=1.4, color=colours["equity"])
    equity_axes.plot(
        dates, curve["buy_and_hold"], label="buy and hold", linewidth=1.0, alpha=0.8,
        color=colours["buy_and_hold"],
    )
    equity_axes.set_ylabel("equity")
    equity_axes.set_title(title)
    equity_axes.legend(loc="upper left")
    equity_axes.grid(alpha=0.3)
    for column, label in (("equity", "strategy"), ("buy_and_hold", "buy and hold")):
        series = curve[column]
        drawdown = series / series.cummax() - 1.0
        drawdown_axes.fill_between(dates, drawdown, 0.0, alpha=0.35, label=label, color=colours[column])
    drawdown_axes.set_ylabel("drawdown")
    drawdown_axes.legend(loc="lower left")
    drawdown_axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png_path)
    return png_path
