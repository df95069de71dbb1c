"""Checks that turn unusable bars into a DataError naming the file, the column and the row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tmpipe.engine.features import FEATURES, PRICE_COLUMNS
from tmpipe.errors import DataError

REQUIRED_COLUMNS = ["date", "open", "high", "low", "close"]


def iso(timestamp) -> str:
    """ISO 8601; just the date for bars stamped at midnight."""
    ts = pd.Timestamp(timestamp)
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def _where(frame: pd.DataFrame, position: int) -> str:
    """'data row N (date D)': N counts data rows from 1, as a spreadsheet user would."""
    date = frame["date"].iloc[position]
    shown = "missing" if pd.isna(date) else iso(date)
    return f"data row {position + 1} (date {shown})"


def check_columns(columns: list[str], source: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"missing columns: {', '.join(missing)} (found: {', '.join(map(str, columns))})", source)
    present = [f for f in FEATURES if f in columns]
    if present and len(present) < len(FEATURES):
        absent = [f for f in FEATURES if f not in columns]
        raise DataError(f"TradeMaster layout with missing columns: {', '.join(absent)}", source)


def check_values(frame: pd.DataFrame, source: str) -> None:
    """NaNs, non-positive prices and non-increasing timestamps, each with the first bad row."""
    for column in ["date", *PRICE_COLUMNS, *[f for f in FEATURES if f in frame]]:
        missing = frame[column].isna().to_numpy()
        if missing.any():
            first = int(np.argmax(missing))
            raise DataError(f"column {column!r} has a missing/NaN value at {_where(frame, first)}", source)
    for column in PRICE_COLUMNS:
        bad = (frame[column].to_numpy(np.float64) <= 0) | ~np.isfinite(frame[column].to_numpy(np.float64))
        if bad.any():
            first = int(np.argmax(bad))
            raise DataError(
                f"column {column!r} has a non-positive price {float(frame[column].iloc[first])!r} at {_where(frame, first)}",
                source,
            )
    stamps = frame["date"].to_numpy("datetime64[ns]").astype(np.int64)
    not_increasing = np.diff(stamps) <= 0
    if not_increasing.any():
        first = int(np.argmax(not_increasing)) + 1
        raise DataError(
            f"timestamps are not strictly increasing at {_where(frame, first)} "
            f"(previous {iso(frame['date'].iloc[first - 1])})",
            source,
        )


def check_length(rows: int, needed: int, what: str, source: str) -> None:
    if rows < needed:
        raise DataError(f"too few rows: {what} has {rows}, needs at least {needed}", source)
