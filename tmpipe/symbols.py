"""Symbol names: validated before they touch a path, a tag, a query or a task label."""

from __future__ import annotations

import re

from tmpipe.errors import SymbolError
from tmpipe.spec import schemas

# The schema ends its pattern with "$(?!\n)" because jsonschema uses re.search, where "$" also
# matches before a final newline. fullmatch needs no such guard, and neither does pydantic's
# Rust regex engine (where "$" is the end of the text), which has no look-ahead at all.
SYMBOL_PATTERN = re.compile(schemas.schema(schemas.SYMBOL)["pattern"].removesuffix("(?!\\n)"))


def validate_symbol(symbol: object) -> str:
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.fullmatch(symbol):
        raise SymbolError(
            f"invalid symbol {symbol!r}: use 1-32 letters, digits or . _ - = ^, starting with a letter, digit or ^"
        )
    return symbol
