"""Safe YAML loading that remembers where every key and value came from.

PyYAML's SafeLoader silently keeps the last of duplicate keys and forgets positions once a
document is constructed. We compose the node graph ourselves (with ``yaml_safety``'s limits)
so that each JSON path maps to its line and column, duplicates become problems instead of
silent overwrites, and keys stay the text the user wrote.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import yaml

from tmpipe.spec.problems import Problem, json_path
from tmpipe.spec.yaml_errors import syntax_problem
from tmpipe.spec.yaml_safety import MAX_DOCUMENT_BYTES, BoundedLoader, check_expansion, first_forbidden_character

Path = tuple[str | int, ...]
EMPTY_DOCUMENT = "the document is empty"


@dataclass
class PositionedDocument:
    """A loaded document plus 1-based (line, column) of each path's key and value."""

    file: str
    data: Any
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    value_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Source text of unquoted scalars YAML read as something else (ON -> True), for messages.
    plain_scalars: dict[Path, str] = field(default_factory=dict)

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Closest known position: the path itself, else its nearest ancestor."""
        table = self.key_positions if key else self.value_positions
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if not key and probe in self.key_positions:
                return self.key_positions[probe]
            probe = probe[:-1]
        return self.value_positions.get((), (1, 1))

    def problem(self, path: Path, message: str, *, key: bool = False) -> Problem:
        line, column = self.position(path, key=key)
        return Problem(self.file, line, column, json_path(path), message)

    def source(self, path: Path) -> str:
        """``file:line`` of a key, for provenance."""
        line, _ = self.position(path, key=True)
        return f"{self.file}:{line}"


def load_positioned(text: str, file: str) -> PositionedDocument:
    """Parse YAML (or JSON) within the limits of ``yaml_safety``; every failure is a problem."""
    doc = PositionedDocument(file=file, data=None)
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_DOCUMENT_BYTES:
        doc.problems.append(Problem(file, 1, 1, "$", f"the document is {size:,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}"))
        return doc
    bad = first_forbidden_character(text)
    if bad is not None:
        line, column = text.count("\n", 0, bad) + 1, bad - text.rfind("\n", 0, bad)
        doc.problems.append(Problem(file, line, column, "$", f"control character U+{ord(text[bad]):04X} is not allowed in YAML"))
        return doc
    loader = BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            doc.problems.append(Problem(file, 1, 1, "$", EMPTY_DOCUMENT))
            return doc
        check_expansion(node)
        doc.data = _construct(loader, node, (), doc)
    except yaml.YAMLError as exc:
        doc.problems.append(syntax_problem(exc, text, file, loader.last_multiline_quote))
    finally:
        loader.dispose()
    return doc


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _construct(loader: BoundedLoader, node: yaml.Node, path: Path, doc: PositionedDocument) -> Any:
    doc.value_positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, column = _mark(key_node)
                doc.problems.append(Problem(doc.file, line, column, json_path(path), "a key must be a name, not a list or mapping"))
                continue
            # The text as written: YAML 1.1 would turn ON into True, 0700 into 448 and 12:30 into 750.
            key = key_node.value
            child = (*path, key)
            if key in result:
                line, column = _mark(key_node)
                first_line, _ = doc.key_positions[child]
                doc.problems.append(
                    Problem(doc.file, line, column, json_path(child), f"duplicate key '{key}' (first defined on line {first_line})")
                )
                continue
            doc.key_positions[child] = _mark(key_node)
            result[key] = _construct(loader, value_node, child, doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*path, index), doc) for index, item in enumerate(node.value)]
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError as exc:  # e.g. an impossible date such as 2024-13-45
        line, column = _mark(node)
        doc.problems.append(Problem(doc.file, line, column, json_path(path), f"invalid value {_shortened(node.value)!r}: {_shortened(str(exc))}"))
        return None
    # Unquoted dates are a YAML convenience; the schemas (and JSON) speak ISO strings.
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if not isinstance(value, str) and isinstance(node, yaml.ScalarNode) and not node.style:
        doc.plain_scalars[path] = node.value
    return value


def _shortened(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
