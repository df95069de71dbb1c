"""Loading bars: TradeMaster layout, plain OHLCV, split directories, and each bad-data error."""

import numpy as np
import pandas as pd
import pytest

from tmpipe.engine.bars import Bars
from tmpipe.engine.data import infer_bars_per_year, load_bars, load_dataset
from tmpipe.config.sections import DataConfig
from tmpipe.engine.features import FEATURES, TRADEMASTER_COLUMNS, add_z_features
from tmpipe.errors import DataError, SymbolError


def csv_config(path, **extra) -> DataConfig:
    return DataConfig.from_values({"source": "csv", "path": str(path), **extra})


def write_trademaster_csv(frame: pd.DataFrame, path, symbol="SYN"):
    """As TradeMaster's split files: an unnamed index column first, then tic, date, prices, z*."""
    out = add_z_features(Bars.from_frame(frame)).to_frame().assign(tic=symbol)[TRADEMASTER_COLUMNS]
    out.index = out.index + 1000
    out.to_csv(path, index=True)
    return out


def test_trademaster_csv_round_trip(tmp_path, ohlc_frame):
    path = tmp_path / "SYN.csv"
    written = write_trademaster_csv(ohlc_frame, path)
    assert open(path).readline().startswith(",tic,date,")
    bars = load_bars(csv_config(path), "SYN")
    assert list(bars.columns) == [*TRADEMASTER_COLUMNS, "split"]
    np.testing.assert_allclose(bars[FEATURES].to_numpy(), written[FEATURES].to_numpy(), rtol=1e-12)
    assert (bars["date"].to_numpy() == ohlc_frame["date"].to_numpy()).all()
    assert bars["split"].value_counts().to_dict() == {"train": 84, "valid": 18, "test": 18}


def test_z_features_follow_trademaster_formulas(tmp_path, ohlc_frame):
    path = tmp_path / "plain.csv"
    ohlc_frame.rename(columns={"adjcp": "Adj Close", "close": "Close"}).to_csv(path, index=False)
    bars = load_bars(csv_config(path), "SYN")
    c, t = bars["close"].to_numpy(), 40
    assert bars["zopen"][t] == pytest.approx(bars["open"][t] / c[t] - 1)
    assert bars["zhigh"][t] == pytest.approx(bars["high"][t] / c[t] - 1)
    assert bars["zlow"][t] == pytest.approx(bars["low"][t] / c[t] - 1)
    assert bars["zclose"][t] == pytest.approx(c[t] / c[t - 1] - 1)
    assert bars["zadjcp"][t] == pytest.approx(0.0)
    assert bars["zd_5"][t] == pytest.approx(c[t - 4 : t + 1].mean() / c[t] - 1)
    assert bars["zd_30"][t] == pytest.approx(c[t - 29 : t + 1].mean() / c[t] - 1)
    # causal start: no look-ahead in the first bars
    assert bars["zclose"][0] == 0.0 and bars["zd_5"][2] == pytest.approx(c[:3].mean() / c[2] - 1)


def test_parquet_and_split_directory(tmp_path, ohlc_frame):
    ohlc_frame.to_parquet(tmp_path / "SYN.parquet")
    bars = load_bars(csv_config(tmp_path / "{symbol}.parquet", source="parquet"), "SYN")
    assert len(bars) == len(ohlc_frame)
    split_dir = tmp_path / "SYN"
    split_dir.mkdir()
    for name, part in {"train": ohlc_frame[:70], "valid": ohlc_frame[70:95], "test": ohlc_frame[95:]}.items():
        write_trademaster_csv(part.reset_index(drop=True), split_dir / f"{name}.csv")
    dataset = load_dataset(csv_config(tmp_path / "{symbol}"), "SYN")
    assert {k: len(v.own) for k, v in dataset.splits.items()} == {"train": 70, "valid": 25, "test": 25}
    assert all(v.borrowed == 0 for v in dataset.splits.values())


def test_ratio_split_borrows_warmup_bars_and_clips_dates(tmp_path, ohlc_frame):
    path = tmp_path / "bars.csv"
    ohlc_frame.to_csv(path, index=False)
    start = str(ohlc_frame["date"][10].date())
    dataset = load_dataset(csv_config(path, start=start, lookback=5), "SYN")
    assert dataset.frame["date"][0] == ohlc_frame["date"][10]
    test = dataset.splits["test"]
    assert test.borrowed == 4 and len(test.bars) == len(test.own) + 4


def test_symbol_is_checked_before_it_reaches_a_path(tmp_path):
    with pytest.raises(SymbolError):
        load_bars(csv_config(tmp_path / "{symbol}.csv"), "../etc/passwd")


def _write(frame, path):
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (lambda f: f.drop(columns=["close", "low"]), "missing columns: low, close"),
        (lambda f: f.assign(close=f["close"].where(f.index != 5)), "column 'close' has a missing/NaN value at data row 6"),
        (lambda f: f.assign(date=f["date"].where(f.index != 8, f["date"][3])), "not strictly increasing at data row 9"),
        (lambda f: f.assign(low=f["low"].where(f.index != 7, 0.0)), "column 'low' has a non-positive price 0.0 at data row 8"),
        (lambda f: f.iloc[:15], "too few rows"),
        (lambda f: add_z_features(Bars.from_frame(f)).to_frame().drop(columns=["zd_30"]),
         "TradeMaster layout with missing columns: zd_30"),
    ],
    ids=["missing-column", "nan", "non-increasing-dates", "non-positive-price", "too-few-rows", "partial-z"],
)
def test_bad_data_names_the_file(tmp_path, ohlc_frame, corrupt, expected):
    path = _write(corrupt(ohlc_frame.copy()), tmp_path / "bad.csv")
    with pytest.raises(DataError) as err:
        load_bars(csv_config(path), "SYN")
    assert err.value.path == str(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_split_directory_missing_a_file_names_the_directory(tmp_path, ohlc_frame):
    (tmp_path / "train.csv").write_text("x")
    with pytest.raises(DataError, match="lacks valid.csv, test.csv") as err:
        load_bars(csv_config(tmp_path), "SYN")
    assert err.value.path == str(tmp_path)


def _stamps(freq, periods=400, start="2021-01-04"):
    return pd.Series(pd.date_range(start, periods=periods, freq=freq))


def test_bars_per_year_inferred_from_spacing(tmp_path, ohlc_frame):
    assert infer_bars_per_year(_stamps("B")) == 252
    assert infer_bars_per_year(_stamps("D")) == 365
    assert infer_bars_per_year(_stamps("h")) == 365 * 24
    weekday_hours = pd.Series([d + pd.Timedelta(hours=h) for d in pd.bdate_range("2021-01-04", periods=60)
                               for h in range(9, 16)])
    assert infer_bars_per_year(weekday_hours) == 252 * 7
    assert infer_bars_per_year(_stamps("W")) == pytest.approx(365.25 / 7)
    path = _write(ohlc_frame, tmp_path / "bars.csv")
    assert load_dataset(csv_config(path), "SYN").bars_per_year == 252
    assert load_dataset(csv_config(path, bars_per_year=260), "SYN").bars_per_year == 260


def test_synthetic_demo_is_seeded_per_symbol():
    config = DataConfig.from_values({"demo_series": "synthetic", "synthetic_rows": 100})
    a, b = load_bars(config, "AAA"), load_bars(config, "BBB")
    assert load_bars(config, "AAA").equals(a)
    assert not np.allclose(a["close"], b["close"])
    assert not np.allclose(a["close"], load_bars(config.model_copy(update={"synthetic_seed": 1}), "AAA")["close"])


def test_yfinance_source_without_the_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "yfinance", None)  # import fails as if not installed
    with pytest.raises(DataError, match=r"pip install 'tmpipe\[yfinance\]'"):
        load_bars(DataConfig.from_values({"source": "yfinance"}), "SPY")
