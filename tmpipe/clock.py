"""The one timestamp format tmpipe writes (signals, traces, store rows): UTC ISO 8601 with ``Z``."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    """Now, e.g. ``2024-06-28T09:30:00.123456Z``."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
