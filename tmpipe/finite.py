"""The one number coercer for reported figures: a finite float, else None (JSON has no NaN)."""

from __future__ import annotations

import math
import numbers
from typing import Any


def finite_or_none(value: Any, digits: int | None = None) -> float | None:
    """``value`` as a float when it is a finite real number (bools and text are not), else None.

    ``digits`` rounds the result (the evidence pack keeps 6: compact and stable).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return round(number, digits) if digits is not None else number
