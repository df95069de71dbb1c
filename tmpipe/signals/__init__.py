"""Signals that prove themselves: point-in-time grading of persisted signals, track records, reports, backfill."""
