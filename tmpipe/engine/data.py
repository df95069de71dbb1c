"""Loading a symbol's bars from CSV, Parquet, a TradeMaster split directory, the demo or yfinance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tmpipe.engine import demo
from tmpipe.symbols import validate_symbol
from tmpipe.engine.features import FEATURES, TRADEMASTER_COLUMNS, add_z_features
from tmpipe.engine.validation import check_columns, check_length, check_values, iso
from tmpipe.errors import DataError

SPLITS = ("train", "valid", "test")
_ALIASES = {
    "adj close": "adjcp", "adj_close": "adjcp", "adjclose": "adjcp", "adjusted_close": "adjcp",
    "timestamp": "date", "datetime": "date", "time": "date",
    "ticker": "tic", "symbol": "tic",
}


@dataclass(frozen=True)
class SplitBars:
    """One split's bars, led by ``lookback - 1`` warm-up bars that are observed but not traded.

    ``borrowed`` of the warm-up bars come from the previous split (chronological ratio split);
    a TradeMaster split directory warms up on the split's own first bars instead.
    """

    bars: pd.DataFrame
    borrowed: int

    @property
    def own(self) -> pd.DataFrame:
        return self.bars.iloc[self.borrowed :]


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame  # all bars, TradeMaster columns plus 'split'
    splits: dict[str, SplitBars]
    source: str
    bars_per_year: float


def resolve_path(data_config: dict, symbol: str) -> Path:
    if not data_config.get("path"):
        raise DataError(f"data.path is required for source {data_config['source']!r}")
    return Path(str(data_config["path"]).replace("{symbol}", validate_symbol(symbol))).expanduser()


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError("file not found", str(path))
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        else:
            raw = pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read: {exc}", str(path)) from exc
    if "date" not in {str(c).lower() for c in raw.columns} and isinstance(raw.index, pd.DatetimeIndex):
        raw = raw.rename_axis("date").reset_index()
    return raw


def normalise_bars(raw: pd.DataFrame, symbol: str, source: str) -> pd.DataFrame:
    """Any OHLC table -> validated TradeMaster columns (z-features kept if present, else computed)."""
    raw = raw.loc[:, [c for c in raw.columns if not str(c).startswith("Unnamed") and str(c) != ""]]
    raw = raw.rename(columns=lambda c: _ALIASES.get(str(c).strip().lower(), str(c).strip().lower()))
    raw = raw.loc[:, ~raw.columns.duplicated()]
    check_columns(list(raw.columns), source)
    if "tic" in raw and raw["tic"].nunique() > 1:
        raw = raw[raw["tic"].astype(str) == symbol]
        if raw.empty:
            raise DataError(f"no rows for symbol {symbol!r} in the 'tic' column", source)
    frame = raw.reset_index(drop=True).copy()
    dates = pd.to_datetime(frame["date"], errors="coerce", utc=False)
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    frame["date"] = dates.astype("datetime64[ns]")
    if "adjcp" not in frame:
        frame["adjcp"] = frame["close"]
    for column in ["open", "high", "low", "close", "adjcp", *[f for f in FEATURES if f in frame]]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    frame["tic"] = symbol
    check_values(frame, source)
    if not all(f in frame for f in FEATURES):
        frame = add_z_features(frame)
    return frame[TRADEMASTER_COLUMNS]


def _clip(frame: pd.DataFrame, data_config: dict) -> pd.DataFrame:
    if data_config.get("start"):
        frame = frame[frame["date"] >= pd.Timestamp(data_config["start"])]
    if data_config.get("end"):
        end = pd.Timestamp(data_config["end"])
        frame = frame[frame["date"] < end + pd.Timedelta(days=1)]  # inclusive of the end day
    return frame.reset_index(drop=True)


def _load_source(data_config: dict, symbol: str) -> tuple[str, pd.DataFrame | dict[str, pd.DataFrame]]:
    source = data_config["source"]
    if source == "demo":
        series = data_config["demo_series"]
        if series == "synthetic":
            raw = demo.synthetic_series(symbol, data_config["synthetic_rows"], data_config.get("synthetic_seed", 0))
        else:
            raw = demo.arch_series(series)
        name = f"demo:{series}"
        return name, normalise_bars(raw, symbol, name)
    if source == "yfinance":
        name = f"yfinance:{symbol}"
        return name, normalise_bars(_download_yfinance(data_config, symbol), symbol, name)
    path = resolve_path(data_config, symbol)
    if path.is_dir():
        files = {split: path / f"{split}.csv" for split in SPLITS}
        absent = [f.name for f in files.values() if not f.exists()]
        if absent:
            raise DataError(f"split directory lacks {', '.join(absent)}", str(path))
        return str(path), {split: normalise_bars(_read_table(f), symbol, str(f)) for split, f in files.items()}
    return str(path), normalise_bars(_read_table(path), symbol, str(path))


def _download_yfinance(data_config: dict, symbol: str) -> pd.DataFrame:
    try:
        import yfinance
    except ImportError as exc:
        raise DataError("source 'yfinance' needs the optional extra: pip install 'tmpipe[yfinance]'") from exc
    raw = yfinance.download(symbol, start=data_config.get("start"), end=data_config.get("end"),
                            auto_adjust=False, progress=False)
    if isinstance(raw.columns, pd.MultiIndex):
        raw.columns = raw.columns.get_level_values(0)
    if raw.empty:
        raise DataError(f"yfinance returned no bars for {symbol!r}")
    return raw.rename_axis("date").reset_index()


def infer_bars_per_year(dates: pd.Series) -> float:
    """Annualisation factor from the median bar spacing.

    Daily bars: 365 when weekends carry bars (crypto), else 252. Intraday: bars per active day
    times 365 or 252 the same way. Coarser bars: 365.25 days divided by the spacing.
    """
    stamps = pd.DatetimeIndex(dates).as_unit("ns")
    if len(stamps) < 2:
        raise DataError("cannot infer bars_per_year from fewer than 2 bars")
    spacing_days = float(np.median(np.diff(stamps.asi8))) / 86_400e9
    has_weekends = bool((stamps.dayofweek >= 5).mean() > 0.05)
    days_per_year = 365.0 if has_weekends else 252.0
    if spacing_days < 0.75:
        bars_per_day = float(pd.Series(stamps.normalize()).value_counts().median())
        return days_per_year * bars_per_day
    if spacing_days <= 1.5:
        return days_per_year
    return 365.25 / spacing_days


def load_dataset(data_config: dict, symbol: str) -> Dataset:
    """Bars of one symbol with their train/valid/test splits, validated and clipped."""
    validate_symbol(symbol)
    lookback = int(data_config["lookback"])
    if lookback < 1:
        raise DataError(f"data.lookback must be >= 1, got {lookback}")
    name, loaded = _load_source(data_config, symbol)
    warmup = lookback - 1
    splits: dict[str, SplitBars] = {}
    if isinstance(loaded, dict):
        for split in SPLITS:
            bars = _clip(loaded[split], data_config)
            check_length(len(bars), lookback + 1, f"the {split} split after start/end", f"{name}/{split}.csv")
            splits[split] = SplitBars(bars, borrowed=0)
        frame = pd.concat([splits[s].bars.assign(split=s) for s in SPLITS]).sort_values("date", kind="stable")
        frame = frame.reset_index(drop=True)
        check_values(frame, name)  # the three files must not overlap in time
    else:
        frame = _clip(loaded, data_config)
        rows = len(frame)
        n_test = int(round(rows * data_config["test_ratio"]))
        n_valid = int(round(rows * data_config["valid_ratio"]))
        n_train = rows - n_test - n_valid
        needed = int(np.ceil((lookback + 1) / min(data_config["test_ratio"], data_config["valid_ratio"], 0.5)))
        check_length(rows, max(needed, 2 * (lookback + 1)), f"lookback {lookback} with these split ratios", name)
        bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid), "test": (n_train + n_valid, rows)}
        labels = np.empty(rows, dtype=object)
        for split, (lo, hi) in bounds.items():
            start = max(0, lo - warmup)
            splits[split] = SplitBars(frame.iloc[start:hi].reset_index(drop=True), borrowed=lo - start)
            labels[lo:hi] = split
        frame = frame.assign(split=labels)
    bars_per_year = data_config.get("bars_per_year") or infer_bars_per_year(frame["date"])
    return Dataset(frame=frame, splits=splits, source=name, bars_per_year=float(bars_per_year))


def load_bars(data_config: dict, symbol: str) -> pd.DataFrame:
    """All of a symbol's bars in TradeMaster's columns, plus 'split' (train/valid/test)."""
    return load_dataset(data_config, symbol).frame


def fingerprint(frame: pd.DataFrame) -> dict:
    """sha256 over timestamps and prices, independent of the file format they came from."""
    digest = hashlib.sha256()
    digest.update(frame["date"].to_numpy("datetime64[ns]").astype(np.int64).tobytes())
    digest.update(frame[["open", "high", "low", "close", "adjcp"]].to_numpy(np.float64).tobytes())
    return {
        "sha256": digest.hexdigest(),
        "first_timestamp": iso(frame["date"].iloc[0]),
        "last_timestamp": iso(frame["date"].iloc[-1]),
        "rows": int(len(frame)),
    }
