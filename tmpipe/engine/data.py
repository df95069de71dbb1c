"""Loading a symbol's bars from CSV, Parquet, a TradeMaster split directory, the demo or yfinance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tmpipe.config.sections import DataConfig

from tmpipe.engine.bars import Bars, numeric, parse_dates, read_csv
from tmpipe.symbols import validate_symbol
from tmpipe.engine.features import FEATURES, PRICE_COLUMNS, TRADEMASTER_COLUMNS, add_z_features
from tmpipe.engine.bar_validation import check_columns, check_length, check_values, iso
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

    bars: Bars
    borrowed: int

    @property
    def own(self) -> Bars:
        return self.bars.rows(slice(self.borrowed, None))


@dataclass(frozen=True)
class Dataset:
    frame: Bars  # all bars, TradeMaster columns plus 'split'
    splits: dict[str, SplitBars]
    source: str
    bars_per_year: float


def resolve_path(data_config: DataConfig, symbol: str) -> Path:
    if not data_config.path:
        raise DataError(f"data.path is required for source {data_config.source!r}")
    return Path(data_config.path.replace("{symbol}", validate_symbol(symbol))).expanduser()


def _read_table(path: Path) -> Bars:
    if not path.exists():
        raise DataError("file not found", str(path))
    if path.suffix.lower() not in (".parquet", ".pq"):
        return read_csv(path)
    import pandas as pd

    try:
        return Bars.from_frame(pd.read_parquet(path))
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read: {exc}", str(path)) from exc


def normalise_bars(raw: Bars, symbol: str, source: str) -> Bars:
    """Any OHLC table -> validated TradeMaster columns (z-features kept if present, else computed)."""
    columns: dict[str, np.ndarray] = {}
    for name, values in raw.columns.items():
        if name.startswith("Unnamed") or name.strip() == "":  # a saved index
            continue
        columns.setdefault(_ALIASES.get(name.strip().lower(), name.strip().lower()), values)
    check_columns(list(columns), source)
    table = Bars(columns)
    if "tic" in table and len(set(table["tic"].astype(str))) > 1:
        table = table.rows(table["tic"].astype(str) == symbol)
        if not len(table):
            raise DataError(f"no rows for symbol {symbol!r} in the 'tic' column", source)
    if "adjcp" not in table:
        table = table.with_columns(adjcp=table["close"])
    converted = {"tic": np.full(len(table), symbol, dtype=object), "date": parse_dates(table["date"])}
    converted.update({c: numeric(table[c]) for c in [*PRICE_COLUMNS, *FEATURES] if c in table})
    frame = Bars(converted)
    check_values(frame, source)
    if not all(f in frame for f in FEATURES):
        frame = add_z_features(frame)
    return frame.select(TRADEMASTER_COLUMNS)


def _clip(frame: Bars, data_config: DataConfig) -> Bars:
    keep = np.ones(len(frame), dtype=bool)
    if data_config.start:
        keep &= frame["date"] >= _day(data_config.start, "data.start")
    end = data_config.end
    if end and _has_time(end):
        keep &= frame["date"] <= _day(end, "data.end")  # up to and including that bar
    elif end:
        keep &= frame["date"] < _day(end, "data.end") + np.timedelta64(1, "D")  # inclusive of the end day
    return frame.rows(keep)


def _has_time(value) -> bool:
    """Whether ``data.end`` names a bar (a timestamp) rather than a day."""
    return len(str(value).strip()) > 10


def _day(value, key: str) -> np.datetime64:
    stamp = parse_dates(np.array([str(value)], dtype=object))[0]
    if np.isnat(stamp):
        raise DataError(f"{key} is not a date: {value!r}")
    return stamp


def _load_source(data_config: DataConfig, symbol: str) -> tuple[str, Bars | dict[str, Bars]]:
    source = data_config.source
    if source == "demo":
        from tmpipe.engine import demo

        series = data_config.demo_series
        if series == "synthetic":
            raw = demo.synthetic_series(symbol, data_config.synthetic_rows, data_config.synthetic_seed)
        elif series in ("planted", "random_walk"):
            raw = demo.known_answer_series(series, symbol, data_config.synthetic_rows, data_config.synthetic_seed)
        else:
            raw = demo.arch_series(series)
        name = f"demo:{series}"
        return name, normalise_bars(Bars.from_frame(raw), symbol, name)
    if source == "yfinance":
        name = f"yfinance:{symbol}"
        return name, normalise_bars(Bars.from_frame(_download_yfinance(data_config, symbol)), symbol, name)
    path = resolve_path(data_config, symbol)
    if path.is_dir():
        files = {split: path / f"{split}.csv" for split in SPLITS}
        absent = [f.name for f in files.values() if not f.exists()]
        if absent:
            raise DataError(f"split directory lacks {', '.join(absent)}", str(path))
        return str(path), {split: normalise_bars(_read_table(f), symbol, str(f)) for split, f in files.items()}
    return str(path), normalise_bars(_read_table(path), symbol, str(path))


def _download_yfinance(data_config: DataConfig, symbol: str):
    """The symbol's daily bars as a pandas DataFrame with a 'date' column."""
    try:
        import yfinance
    except ImportError as exc:
        raise DataError("source 'yfinance' needs the optional extra: pip install 'tmpipe[yfinance]'") from exc
    import pandas as pd

    end = data_config.end  # daily bars: a timestamp's day (the bars are clipped to it after)
    raw = yfinance.download(symbol, start=data_config.start, end=str(end)[:10] if end else None,
                            auto_adjust=False, progress=False)
    if isinstance(raw.columns, pd.MultiIndex):
        raw.columns = raw.columns.get_level_values(0)
    if raw.empty:
        raise DataError(f"yfinance returned no bars for {symbol!r}")
    return raw.rename_axis("date").reset_index()


def infer_bars_per_year(dates) -> float:
    """Annualisation factor from the median bar spacing.

    Daily bars: 365 when weekends carry bars (crypto), else 252. Intraday: bars per active day
    times 365 or 252 the same way. Coarser bars: 365.25 days divided by the spacing.
    """
    stamps = np.asarray(dates).astype("datetime64[ns]")
    if len(stamps) < 2:
        raise DataError("cannot infer bars_per_year from fewer than 2 bars")
    spacing_days = float(np.median(np.diff(stamps.astype(np.int64)))) / 86_400e9
    days = stamps.astype("datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    has_weekends = bool((weekday >= 5).mean() > 0.05)
    days_per_year = 365.0 if has_weekends else 252.0
    if spacing_days < 0.75:
        bars_per_day = float(np.median(np.unique(days, return_counts=True)[1]))
        return days_per_year * bars_per_day
    if spacing_days <= 1.5:
        return days_per_year
    return 365.25 / spacing_days


def load_dataset(data_config: DataConfig, symbol: str) -> Dataset:
    """Bars of one symbol with their train/valid/test splits, validated and clipped."""
    validate_symbol(symbol)
    lookback = data_config.lookback
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
        frame = Bars.concat([splits[s].bars.with_columns(split=np.full(len(splits[s].bars), s, dtype=object))
                             for s in SPLITS])
        frame = frame.rows(np.argsort(frame["date"], kind="stable"))
        check_values(frame, name)  # the three files must not overlap in time
    else:
        frame = _clip(loaded, data_config)
        rows = len(frame)
        n_test = int(round(rows * data_config.test_ratio))
        n_valid = int(round(rows * data_config.valid_ratio))
        n_train = rows - n_test - n_valid
        needed = int(np.ceil((lookback + 1) / min(data_config.test_ratio, data_config.valid_ratio, 0.5)))
        check_length(rows, max(needed, 2 * (lookback + 1)), f"lookback {lookback} with these split ratios", name)
        bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid), "test": (n_train + n_valid, rows)}
        labels = np.empty(rows, dtype=object)
        for split, (lo, hi) in bounds.items():
            start = max(0, lo - warmup)
            splits[split] = SplitBars(frame.rows(slice(start, hi)), borrowed=lo - start)
            labels[lo:hi] = split
        frame = frame.with_columns(split=labels)
    bars_per_year = data_config.bars_per_year or infer_bars_per_year(frame["date"])
    return Dataset(frame=frame, splits=splits, source=name, bars_per_year=float(bars_per_year))


def load_bars(data_config: DataConfig, symbol: str):
    """All of a symbol's bars as a pandas DataFrame: TradeMaster's columns plus 'split' (train/valid/test)."""
    return load_dataset(data_config, symbol).frame.to_frame()


def fingerprint(frame: Bars) -> dict:
    """sha256 over timestamps and prices, independent of the file format they came from."""
    digest = hashlib.sha256()
    digest.update(frame["date"].astype("datetime64[ns]").astype(np.int64).tobytes())
    digest.update(frame.matrix(PRICE_COLUMNS).tobytes())
    return {
        "sha256": digest.hexdigest(),
        "first_timestamp": iso(frame["date"][0]),
        "last_timestamp": iso(frame["date"][-1]),
        "rows": int(len(frame)),
    }
