"""The arch demo series are read straight from arch's CSV files, without importing arch."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from tmpipe.engine.demo import arch_series


@pytest.mark.parametrize("name", ["sp500", "nasdaq"])
def test_same_bars_as_archs_own_loader(name):
    raw = getattr(__import__("arch.data", fromlist=[name]), name).load()
    bars = arch_series(name)
    assert list(bars["date"]) == list(pd.DatetimeIndex(raw.index).as_unit("ns"))
    for column, source in (("open", "Open"), ("high", "High"), ("low", "Low"), ("close", "Close"), ("adjcp", "Adj Close")):
        assert bars[column].equals(pd.Series(raw[source].to_numpy(float), name=column)), column


def test_reading_a_demo_series_does_not_import_arch():
    script = "import sys\nfrom tmpipe.engine.demo import arch_series\narch_series('sp500')\nprint('arch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] == "False"
