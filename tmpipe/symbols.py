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


# A spec's dag.dag_id pattern, so a link can only name a DAG a spec could declare.
DAG_ID_PATTERN = re.compile(
    schemas.schema(schemas.PIPELINE_SPEC)["properties"]["dag"]["properties"]["dag_id"]["pattern"].removesuffix("(?!\\n)")
)


def validate_dag_id(dag_id: object) -> str:
    if not isinstance(dag_id, str) or not DAG_ID_PATTERN.fullmatch(dag_id):
        raise SymbolError(f"invalid dag_id {dag_id!r}: use 1-250 letters, digits or . _ -")
    return dag_id
