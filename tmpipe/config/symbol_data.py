"""The rule that a symbol only ever trains or infers on data that names it.

A layer shared by every symbol (schema defaults, spec ``defaults:``, the environment,
``dag_run.conf``) cannot say which bars belong to one symbol, so the source it sets names
the symbol only through the symbol itself: a yfinance download of its ticker, or a path
whose ``{symbol}`` is replaced by it. A plain path or demo bars name a symbol only when a
layer about that symbol set them: demo bars for a symbol the spec lists in
``demo_symbols:`` or whose ``symbols.<SYM>.data`` chooses them; a file path in
``symbols.<SYM>.data`` (``data.path`` is operator-only, so a WebUI link config cannot set
one). Anything else, such as the
shipped ``defaults: {data: {source: demo}}`` reaching a symbol nobody configured, fails.
"""

from __future__ import annotations

from tmpipe.config.layers import SPEC_SYMBOL
from tmpipe.config.resolver import ResolvedConfig
from tmpipe.errors import DataError
from tmpipe.spec.model import Spec

PATH_PATTERN = "{symbol}"
DEMO_CHOICE_KEYS = ("source", "demo_series")


def check_symbol_data(spec: Spec, resolved: ResolvedConfig) -> None:
    """DataError (one line: symbol, source, who set it, what to set) unless the data names the symbol."""
    symbol, data = resolved.symbol, resolved.data
    source = data.source
    if source == "yfinance":
        return
    if source == "demo":
        own_entry = spec.symbols.get(symbol, {}).get("data", {})
        if symbol in spec.demo_symbols or any(key in own_entry for key in DEMO_CHOICE_KEYS):
            return
        raise DataError(
            f"{symbol}: demo bars ({data.demo_series}) are for the spec's demo_symbols "
            f"({', '.join(spec.demo_symbols) or 'none'}), not {symbol}; set symbols.{symbol}.data "
            f"to a csv/parquet path, a path with {PATH_PATTERN}, or source yfinance "
            f"(data.source demo set by {resolved.provenance['data.source']})"
        )
    path = data.path
    if path is None or PATH_PATTERN in str(path):
        return  # no path: the loader says data.path is required
    origin = resolved.provenance["data.path"]
    if origin.layer == SPEC_SYMBOL:
        return
    raise DataError(
        f"{symbol}: data.path {path!r} is shared by every symbol and does not name {symbol}; put {PATH_PATTERN} "
        f"in it, or set the path in symbols.{symbol}.data (set by {origin})"
    )

