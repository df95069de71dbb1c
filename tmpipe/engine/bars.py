"""A table of bars as NumPy columns: the engine's in-memory data, without pandas.

Training needs only column arrays and row slices. pandas is imported on demand where a format
needs it: Parquet, the demo series, yfinance, dates that are not ISO 8601, and ``to_frame`` for
callers that want a DataFrame.

What it pays (benchmarks/bars_load.py, benchmarks/README.md, 2026-11-27): only where nothing else
imports pandas. The engine alone on a CSV (``tmpipe engine train-backtest``) trains BTC in a
process of 92 MB peak RSS instead of 160 MB with pandas (pandas 3 also imports pyarrow), and
loads the bars in 0.21 s of CPU instead of 0.49 s. Inside a pipeline stage it does not pay:
mlflow has imported pandas already, peak RSS is within 1-5 MB, and pandas' reader takes
0.02-0.04 s less CPU; on the demo series (read through pandas) it makes no difference.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tmpipe.errors import DataError


@dataclass(frozen=True)
class Bars:
    """Equal-length columns by name; 'date' holds datetime64[ns] once normalised."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def rows(self, index) -> Bars:
        """The rows picked by a slice, a boolean mask or an index array."""
        return Bars({name: values[index] for name, values in self.columns.items()})

    def select(self, names: list[str]) -> Bars:
        return Bars({name: self.columns[name] for name in names})

    def with_columns(self, **columns: np.ndarray) -> Bars:
        return Bars({**self.columns, **columns})

    def matrix(self, names: list[str]) -> np.ndarray:
        """(rows, len(names)) float64, C-ordered like DataFrame.to_numpy()."""
        return np.column_stack([np.asarray(self.columns[n], dtype=np.float64) for n in names])

    def to_frame(self):
        """The same table as a pandas DataFrame (imports pandas)."""
        import pandas as pd

        return pd.DataFrame(self.columns)

    @classmethod
    def concat(cls, parts: list[Bars]) -> Bars:
        names = parts[0].names
        return cls({name: np.concatenate([part[name] for part in parts]) for name in names})

    @classmethod
    def from_frame(cls, frame) -> Bars:
        """A pandas table as columns; a DatetimeIndex becomes the 'date' column, tz-aware dates UTC."""
        import pandas as pd

        if "date" not in {str(c).lower() for c in frame.columns} and isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.rename_axis("date").reset_index()
        columns: dict[str, np.ndarray] = {}
        for position, name in enumerate(frame.columns):
            series = frame.iloc[:, position]
            if isinstance(series.dtype, pd.DatetimeTZDtype):
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            columns.setdefault(str(name), series.to_numpy())  # a duplicated name keeps its first column
        return cls(columns)


def read_csv(path: Path) -> Bars:
    """A CSV file's columns as text (converted later by the normaliser); blank lines are skipped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise DataError("empty file: no header row", str(path))
            rows = []
            for row in reader:
                if not row:
                    continue
                if len(row) > len(header):
                    raise DataError(f"line {reader.line_num} has {len(row)} fields, the header {len(header)}", str(path))
                rows.append(row + [""] * (len(header) - len(row)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read: {exc}", str(path)) from exc
    table = np.array(rows, dtype=object).reshape(len(rows), len(header))
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(header):
        columns.setdefault(name.strip(), table[:, i])  # a duplicated name keeps its first column
    return Bars(columns)


def numeric(values: np.ndarray) -> np.ndarray:
    """float64, NaN where a value is empty or not a number."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([_float_or_nan(v) for v in values], dtype=np.float64)


def _float_or_nan(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def parse_dates(values: np.ndarray) -> np.ndarray:
    """datetime64[ns], NaT where a value is empty or not a date; tz-aware stamps become UTC.

    ISO 8601 (what TradeMaster's files and most exports hold) is parsed by NumPy; anything
    else, time zones included, by pandas.
    """
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[ns]")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # NumPy only warns about a time-zone suffix
            return np.array(values, dtype="datetime64[ns]")
    except (ValueError, TypeError, UserWarning):
        import pandas as pd

        parsed = pd.to_datetime(pd.Series(values), errors="coerce", utc=True, format="mixed")
        return parsed.dt.tz_localize(None).to_numpy("datetime64[ns]")
