"""Symbol names: validated before they touch a path, a tag, a query or a task label."""

from __future__ import annotations

import re

from tmpipe.errors import SymbolError
from tmpipe.spec import schemas

SYMBOL_PATTERN = re.compile(schemas.schema(schemas.SYMBOL)["pattern"])


def validate_symbol(symbol: object) -> str:
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.fullmatch(symbol):
        raise SymbolError(
            f"invalid symbol {symbol!r}: use 1-32 letters, digits or . _ - = ^, starting with a letter, digit or ^"
        )
    return symbol
