"""Safe YAML loading that remembers where every key and value came from.

PyYAML's SafeLoader silently keeps the last of duplicate keys and forgets positions once a
document is constructed. We compose the node graph ourselves so that each JSON path maps to
its line and column, and duplicates become problems instead of silent overwrites.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import yaml

from tmpipe.spec.problems import Problem, json_path

Path = tuple[str | int, ...]


@dataclass
class PositionedDocument:
    """A loaded document plus 1-based (line, column) of each path's key and value."""

    file: str
    data: Any
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    value_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

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
    """Parse YAML (or JSON) safely; syntax errors and duplicate keys become problems."""
    doc = PositionedDocument(file=file, data=None)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            doc.problems.append(Problem(file, 1, 1, "$", "the document is empty"))
            return doc
        doc.data = _construct(loader, node, (), doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        doc.problems.append(Problem(file, line, column, "$", f"YAML syntax error: {reason}"))
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(file, 1, 1, "$", f"YAML error: {exc}"))
    finally:
        loader.dispose()
    return doc


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path, doc: PositionedDocument) -> Any:
    doc.value_positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                line, column = _mark(key_node)
                doc.problems.append(Problem(doc.file, line, column, json_path(path), f"keys must be plain scalars, got {key!r}"))
                continue
            key = str(key) if not isinstance(key, str) else key
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
        doc.problems.append(Problem(doc.file, line, column, json_path(path), f"invalid value {node.value!r}: {exc}"))
        return None
    # Unquoted dates are a YAML convenience; the schemas (and JSON) speak ISO strings.
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value
