"""One validation problem, printed as ``FILE:LINE:COL: json.path: message``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Every character str.splitlines() breaks at, written as its escape.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        # One problem is one line, even when a key or value it quotes holds a line break.
        text = f"{self.file}:{self.line}:{self.column}: {self.path}: {self.message}"
        return text.translate(_LINE_BREAKS)


def json_path(parts: tuple | list) -> str:
    """``('defaults', 'review', 'agents', 0, 'name')`` -> ``defaults.review.agents[0].name``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _IDENTIFIER.fullmatch(str(part)):
            text += f"[{json.dumps(str(part))}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "$"


def duplicate_problems(dag_id: str, paths: list[str]) -> list[Problem]:
    """One problem per file that claims ``dag_id``, each naming the others."""
    problems = []
    for path in paths:
        others = ", ".join(str(p) for p in paths if p != path)
        problems.append(Problem(str(path), 1, 1, "dag.dag_id", f"dag_id '{dag_id}' is also the dag_id of {others}; each spec needs its own dag_id"))
    return problems
