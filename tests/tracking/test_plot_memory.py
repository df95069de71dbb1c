"""The equity plot frees its pixel buffer and artists when it returns, not at the next cyclic GC.

A matplotlib figure and its canvas reference each other, so only the cyclic garbage collector
frees them; in `tmpipe run`, where `dag.test()` runs every symbol's tasks in one process, that
can be many symbols later, and each waiting figure holds its 1000x800 RGBA buffer (3.2 MB).
"""

import gc

from tmpipe.tracking.plots import plot_equity_curve


def test_the_plot_leaves_no_renderer_or_artists_for_the_cyclic_gc(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    csv = tmp_path / "equity.csv"
    rows = ["date,close,position,equity,buy_and_hold"] + [
        f"2024-01-{day:02d},{100 + day},{day % 2},{1 + day / 100},{1 + day / 200}" for day in range(1, 29)]
    csv.write_text("\n".join(rows) + "\n")
    gc.collect()
    gc.disable()
    try:
        plot_equity_curve(csv, tmp_path / "equity.png", title="AAA")
        # issubclass(type(o)) rather than isinstance(o): isinstance reads ``__class__``, which
        # warns on torch's deprecated module attributes when torch is installed.
        figures = [o for o in gc.get_objects() if issubclass(type(o), Figure)]
        canvases = [o for o in gc.get_objects() if issubclass(type(o), FigureCanvasAgg)]
        assert [getattr(c, "renderer", None) for c in canvases] == [None] * len(canvases)
        assert [f.axes for f in figures] == [[]] * len(figures)
    finally:
        gc.enable()
    assert (tmp_path / "equity.png").stat().st_size > 0
