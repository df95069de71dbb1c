"""The NumPy bars table: CSV reading, date and number parsing, and a training path without pandas."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tmpipe.engine.bars import Bars, parse_dates, read_csv
from tmpipe.engine.data import load_bars, normalise_bars
from tmpipe.config.sections import DataConfig
from tmpipe.engine.bar_validation import iso
from tmpipe.errors import DataError


def test_csv_columns_come_back_as_text_with_blank_lines_skipped_and_short_rows_padded(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("date,close,note\n2024-01-02,1.5,a\n\n2024-01-03,2\n")
    bars = read_csv(path)
    assert bars.names == ["date", "close", "note"]
    assert bars["close"].tolist() == ["1.5", "2"] and bars["note"].tolist() == ["a", ""]


def test_a_row_with_more_fields_than_the_header_names_its_line(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("date,close\n2024-01-02,1.5\n2024-01-03,2,9\n")
    with pytest.raises(DataError, match="line 3 has 3 fields, the header 2") as err:
        read_csv(path)
    assert err.value.path == str(path)


def test_dates_iso_by_numpy_others_and_time_zones_by_pandas():
    iso_dates = parse_dates(np.array(["2024-01-02", "2024-01-02 09:30:00", ""], dtype=object))
    assert iso_dates[0] == np.datetime64("2024-01-02") and np.isnat(iso_dates[2])
    assert iso_dates[1] == np.datetime64("2024-01-02T09:30:00")
    zoned = parse_dates(np.array(["2024-01-02T10:00:00+01:00", "junk"], dtype=object))
    assert zoned[0] == np.datetime64("2024-01-02T09:00:00") and np.isnat(zoned[1])


def test_iso_shows_the_date_alone_at_midnight_and_no_more_digits_than_needed():
    assert iso(np.datetime64("2024-01-02T00:00:00")) == "2024-01-02"
    assert iso(np.datetime64("2024-01-02T09:30:00")) == "2024-01-02T09:30:00"
    assert iso(np.datetime64("2024-01-02T09:30:00.250")) == "2024-01-02T09:30:00.250"


def test_unparseable_numbers_and_dates_are_reported_as_missing_at_their_row(tmp_path):
    path = tmp_path / "bars.csv"
    rows = [f"2024-01-{d:02d},{100 + d},{101 + d},{99 + d},{100 + d}" for d in range(1, 29)]
    rows[4] = "2024-01-05,100,101,99,n/a"
    path.write_text("date,open,high,low,close\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"column 'close' has a missing/NaN value at data row 5 \(date 2024-01-05\)"):
        normalise_bars(read_csv(path), "SYN", str(path))


def test_load_bars_still_gives_a_dataframe(tmp_path, ohlc_frame):
    path = tmp_path / "bars.csv"
    ohlc_frame.to_csv(path, index=False)
    frame = load_bars(DataConfig.from_values({"source": "csv", "path": str(path)}), "SYN")
    assert frame["date"].dtype == "datetime64[ns]" and frame["close"].tolist() == ohlc_frame["close"].tolist()


def test_training_and_backtesting_on_a_csv_never_import_pandas(tmp_path, ohlc_frame):
    """pandas (with pyarrow) was about 90 MB of a training process's peak RSS (benchmarks/README.md)."""
    path = tmp_path / "bars.csv"
    ohlc_frame.to_csv(path, index=False)
    program = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from tmpipe.engine.api import train_backtest
        from tmpipe.engine.defaults import default_config
        config = default_config(data={{"source": "csv", "path": {str(path)!r}}},
                                trademaster={{"epochs": 1, "torch_threads": 1}})
        train_backtest(config, symbol="SYN", out_dir=Path({str(tmp_path / "out")!r}))
        print(sorted(m for m in ("pandas", "pyarrow") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_from_frame_keeps_the_first_of_duplicated_columns_and_makes_zoned_dates_utc():
    import pandas as pd

    frame = pd.DataFrame([[1.0, 2.0]], columns=["close", "close"])
    frame["date"] = pd.Timestamp("2024-01-02 10:00", tz="Europe/Berlin")
    bars = Bars.from_frame(frame)
    assert bars.names == ["close", "date"] and bars["close"].tolist() == [1.0]
    assert bars["date"][0] == np.datetime64("2024-01-02T09:00:00")


def test_a_csv_with_a_header_and_no_rows_is_too_few_rows(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("date,open,high,low,close\n")
    with pytest.raises(DataError, match="too few rows"):
        load_bars(DataConfig.from_values({"source": "csv", "path": str(path)}), "SYN")
