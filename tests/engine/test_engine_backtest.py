"""The equity-curve CSV both backends write."""

import csv

import numpy as np

from tmpipe.engine.backtest import write_equity_curve


def test_equity_curve_csv_keeps_floats_exact_and_writes_nan_as_an_empty_cell(tmp_path):
    dates = np.array(["2024-01-02", "2024-01-03"], dtype="datetime64[ns]")
    equity = np.array([100000.0, 100000.0 / 3.0])
    path = write_equity_curve(tmp_path / "curve.csv", dates,
                              {"close": [10.0, 10.1], "position": [0.5, np.nan], "equity": equity})
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["date", "close", "position", "equity"]
    assert [r[0] for r in rows[1:]] == ["2024-01-02", "2024-01-03"]
    assert rows[2][2] == ""  # NaN: missing, as pandas writes and reads it
    assert float(rows[2][3]) == equity[1]  # repr round-trips exactly
