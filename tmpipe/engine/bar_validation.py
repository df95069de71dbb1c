"""Checks that turn unusable bars into a DataError naming the file, the column and the row."""

from __future__ import annotations

import numpy as np

from tmpipe.engine.features import FEATURES, PRICE_COLUMNS
from tmpipe.errors import DataError

REQUIRED_COLUMNS = ["date", "open", "high", "low", "close"]


def iso(timestamp) -> str:
    """ISO 8601; just the date for bars stamped at midnight, else to the finest unit needed."""
    stamp = np.datetime64(timestamp, "ns")
    for unit in ("D", "s", "ms", "us"):
        if stamp == stamp.astype(f"datetime64[{unit}]"):
            return np.datetime_as_string(stamp, unit=unit)
    return np.datetime_as_string(stamp, unit="ns")


def _where(frame, position: int) -> str:
    """'data row N (date D)': N counts data rows from 1, as a spreadsheet user would."""
    date = frame["date"][position]
    shown = "missing" if np.isnat(date) else iso(date)
    return f"data row {position + 1} (date {shown})"


def check_columns(columns: list[str], source: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"missing columns: {', '.join(missing)} (found: {', '.join(map(str, columns))})", source)
    present = [f for f in FEATURES if f in columns]
    if present and len(present) < len(FEATURES):
        absent = [f for f in FEATURES if f not in columns]
        raise DataError(f"TradeMaster layout with missing columns: {', '.join(absent)}", source)


def check_values(frame, source: str) -> None:
    """NaNs, non-positive prices and non-increasing timestamps, each with the first bad row.

    ``frame`` is a tmpipe.engine.bars.Bars with 'date' as datetime64 and the numbers as float64.
    """
    missing_date = np.isnat(frame["date"])
    for column, missing in [("date", missing_date),
                            *[(c, np.isnan(frame[c])) for c in [*PRICE_COLUMNS, *FEATURES] if c in frame]]:
        if missing.any():
            first = int(np.argmax(missing))
            raise DataError(f"column {column!r} has a missing/NaN value at {_where(frame, first)}", source)
    for column in PRICE_COLUMNS:
        bad = (frame[column] <= 0) | ~np.isfinite(frame[column])
        if bad.any():
            first = int(np.argmax(bad))
            raise DataError(
                f"column {column!r} has a non-positive price {float(frame[column][first])!r} at {_where(frame, first)}",
                source,
            )
    stamps = frame["date"].astype("datetime64[ns]").astype(np.int64)
    not_increasing = np.diff(stamps) <= 0
    if not_increasing.any():
        first = int(np.argmax(not_increasing)) + 1
        raise DataError(
            f"timestamps are not strictly increasing at {_where(frame, first)} "
            f"(previous {iso(frame['date'][first - 1])})",
            source,
        )


def check_length(rows: int, needed: int, what: str, source: str) -> None:
    if rows < needed:
        raise DataError(f"too few rows: {what} has {rows}, needs at least {needed}", source)
