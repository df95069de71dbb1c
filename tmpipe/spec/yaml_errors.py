"""YAML syntax errors as one sentence at the line where the broken construct starts.

PyYAML (and libyaml) notice an unclosed ``[`` or quote where the file ends or the next
quote is, and a key without ``:`` on the following line; their messages are parser
jargon. Each rule here picks the position a user should look at and says what is wrong.
"""

from __future__ import annotations

import re

from typing import TYPE_CHECKING

import yaml

from tmpipe.spec.problems import Problem
from tmpipe.spec.yaml_safety import MAX_DEPTH, LimitExceeded

if TYPE_CHECKING:
    from yaml._yaml import Mark as CMark  # libyaml's marks

_PREFIX = "YAML syntax error: "


def is_syntax_error(problem: Problem) -> bool:
    """A problem that says the text is not YAML (rather than YAML this project refuses)."""
    return problem.message.startswith(_PREFIX)


def syntax_problem(exc: yaml.YAMLError, text: str, file: str, last_multiline_quote: yaml.Event | None) -> Problem:
    """The one problem that describes ``exc``, raised while loading ``text``."""
    if isinstance(exc, LimitExceeded):
        return _at(file, exc.mark, exc.message)
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem(file, 1, 1, "$", f"{_PREFIX}{exc}")
    context, problem = exc.context or "", exc.problem or ""
    start, found = exc.context_mark, exc.problem_mark or exc.context_mark
    if "nesting depth" in problem:
        # libyaml stops at its own limit (1000) before the composer sees ours; same message,
        # at the bracket that passed this project's limit.
        opened = _open_brackets(text, found.index + 1, deeper_than=MAX_DEPTH) if found is not None else []
        return _at(file, _mark_at(text, opened[-1]) if len(opened) > MAX_DEPTH else found, f"nested deeper than {MAX_DEPTH} levels")
    quote = last_multiline_quote
    if quote is not None and found is not None and quote.end_mark is not None and quote.end_mark.line == found.line:
        return _at(file, quote.start_mark, _PREFIX + (
            f"the quoted value that starts here runs on to line {quote.end_mark.line + 1}; is its closing quote missing?"))
    for rule in _RULES:
        said = rule(context, problem, start, found, text)
        if said:
            mark, message = said
            return _at(file, mark, _PREFIX + message)
    where = f" ({context}, line {start.line + 1})" if context and start is not None else ""
    return _at(file, found, f"{_PREFIX}{problem or 'invalid YAML'}{where}")


def _at(file: str, mark: yaml.Mark | CMark | None, message: str) -> Problem:
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Problem(file, line, column, "$", message)


def _char(text: str, mark: yaml.Mark | None) -> str:
    return text[mark.index] if mark is not None and 0 <= mark.index < len(text) else ""


# Each rule: (context, problem, context mark, problem mark, text) -> (mark, sentence) or None.


def _unclosed_bracket(context, problem, start, found, text):
    kind = re.search(r"flow (sequence|mapping|node)", context)
    if kind and kind.group(1) == "node" and found is not None:
        # libyaml names no opening mark when the file ends right after a '[' or ','.
        start = _open_bracket_mark(text, found.index)
    if kind and start is not None:
        opener = _char(text, start)
        if opener in ("[", "{"):
            closer = "]" if opener == "[" else "}"
            return start, (f"this '{opener}' is never closed: expected ',' or '{closer}' before "
                           f"line {found.line + 1}, column {found.column + 1}")
    return None


def _open_bracket_mark(text: str, end: int) -> yaml.Mark | None:
    """Where the innermost '[' or '{' still open at ``end`` is."""
    opened = _open_brackets(text, end)
    return _mark_at(text, opened[-1]) if opened else None


def _open_brackets(text: str, end: int, *, deeper_than: int | None = None) -> list[int]:
    """Offsets of the '[' and '{' open at ``end`` (quotes and comments skipped), or at the first
    point where more than ``deeper_than`` are open."""
    opened: list[int] = []
    index, quote = 0, ""
    while index < min(end, len(text)):
        char = text[index]
        if quote:
            if char == "\\" and quote == '"':
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t\n"):
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        elif char in "[{":
            opened.append(index)
            if deeper_than is not None and len(opened) > deeper_than:
                break
        elif char in "]}" and opened:
            opened.pop()
        index += 1
    return opened


def _mark_at(text: str, index: int) -> yaml.Mark:
    return yaml.Mark("", index, text.count("\n", 0, index), index - text.rfind("\n", 0, index) - 1, None, 0)


def _unclosed_quote(context, problem, start, found, text):
    if "quoted scalar" in context and "end of stream" in problem:
        return start, "this quote is never closed"
    if "quoted scalar" in context and "escape" in problem:
        return found, "unknown escape sequence in a double-quoted value (use single quotes to keep backslashes)"
    return None


def _key_without_colon(context, problem, start, found, text):
    if "simple key" in context:
        return start, "this line has no ':' after its key; write 'key: value' (or '- value' for a list item)"
    return None


def _stray_character(context, problem, start, found, text):
    char = _char(text, found)
    if "cannot start any token" in problem:
        if char == "\t":
            return found, "a tab cannot indent YAML; use spaces"
        return found, f"a value cannot start with {char!r}; put the value in quotes"
    if char in ("]", "}") and ("block" in context or "block end" in problem or "expected key" in problem):
        return found, f"{char!r} closes nothing: there is no matching {'[' if char == ']' else '{'!r} before it"
    return None


def _indentation(context, problem, start, found, text):
    if "block" in context and ("block end" in problem or "did not find expected" in problem):
        began = f" (the block it should belong to starts at line {start.line + 1})" if start is not None else ""
        return found, ("this line's indentation does not fit the lines above it" + began +
                "; align it with its sibling keys, and do not mix '- ' items with 'key:' entries at one level")
    if "mapping values are not allowed" in problem:
        return found, "unexpected ':' here; quote a value that contains ': ', or check this line's indentation"
    return None


def _composer(context, problem, start, found, text):
    name = re.search(r"'(.*)'", problem) or re.search(r"'(.*)'", context)
    if "undefined alias" in problem and name:
        return found, f"the alias *{name.group(1)} refers to no anchor &{name.group(1)} defined before it"
    if "duplicate anchor" in context and name and start is not None:
        return found, f"the anchor &{name.group(1)} is already defined on line {start.line + 1}"
    if "single document" in context:
        return found, "a file holds one YAML document; remove this second document (from '---')"
    return None


_RULES = (_unclosed_bracket, _unclosed_quote, _key_without_colon, _stray_character, _indentation, _composer)
