"""A YAML loader with limits, so that hostile or broken input fails fast and in one line.

Plain PyYAML will spend minutes and gigabytes on an alias bomb, overflow the stack on deep
nesting, and turn a tagged list into a plain one. This loader composes the node graph
itself and rejects, at the node's position: explicit tags (``!!python/...``, ``!custom``,
and core tags such as ``!!str`` too - quote a value instead), nesting deeper than
``MAX_DEPTH``, recursive aliases, and documents whose aliases expand past ``MAX_VALUES``.
Documents larger than ``MAX_DOCUMENT_BYTES`` are refused before parsing. libyaml's parser
is used when PyYAML has it (it is about ten times faster); composing stays in Python.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

if TYPE_CHECKING:
    from yaml._yaml import Mark as CMark  # libyaml's marks

MAX_DOCUMENT_BYTES = 128 * 1024
MAX_DEPTH = 64
MAX_VALUES = 50_000
_CORE_TAG = "tag:yaml.org,2002:"

# What YAML forbids in a stream (as PyYAML's Reader.NON_PRINTABLE).
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class LimitExceeded(yaml.YAMLError):
    """The document breaks one of this module's rules; ``mark`` says where."""

    def __init__(self, message: str, mark: yaml.Mark | CMark | None):
        super().__init__(message)
        self.message = message
        self.mark = mark


def first_forbidden_character(text: str) -> int | None:
    """Index of the first control character YAML does not allow, if any."""
    match = _NON_PRINTABLE.search(text)
    return match.start() if match else None


def _as_written(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE_TAG) if tag.startswith(_CORE_TAG) else tag


class _BoundedComposer(Composer):
    def __init__(self) -> None:
        Composer.__init__(self)
        self._depth = 0
        self._values = 0
        self.last_multiline_quote: yaml.Event | None = None

    peek_event: Callable[[], yaml.Event]  # from the parser this composer is mixed with

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)) and event.tag is not None:
            raise LimitExceeded(
                f"the tag {_as_written(event.tag)} is not allowed: tags are not supported (quote a value to keep it a string)",
                event.start_mark,
            )
        self._values += 1
        if self._values > MAX_VALUES:
            raise LimitExceeded(f"more than {MAX_VALUES:,} values in one document", event.start_mark)
        if isinstance(event, yaml.ScalarEvent):
            if (event.style in ('"', "'") and event.end_mark is not None and event.start_mark is not None
                    and event.end_mark.line > event.start_mark.line):
                self.last_multiline_quote = event
            return Composer.compose_node(self, parent, index)
        if not isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            return Composer.compose_node(self, parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise LimitExceeded(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class BoundedLoader(_BoundedComposer, CParser, SafeConstructor, Resolver):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class BoundedLoader(_BoundedComposer, Reader, Scanner, Parser, SafeConstructor, Resolver):  # type: ignore[no-redef]
        def __init__(self, text: str) -> None:
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


def check_expansion(root: yaml.Node) -> None:
    """Reject alias cycles and graphs whose aliases expand too deep or to too many values.

    Sizes are memoised per node, so this costs one pass over the composed (unexpanded) graph.
    An anchor is always composed before its aliases, so the recursion follows the document's
    own nesting (at most ``MAX_DEPTH``).
    """
    measured: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in measured:
            return measured[key]
        if key in open_nodes:
            raise LimitExceeded("an alias refers to the list or mapping that contains it", node.start_mark)
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        size, depth = 1, 1
        for child in children:
            child_size, child_depth = measure(child)
            size, depth = size + child_size, max(depth, child_depth + 1)
            if size > MAX_VALUES:
                raise LimitExceeded(f"more than {MAX_VALUES:,} values once aliases are expanded", node.start_mark)
            if depth > MAX_DEPTH:
                raise LimitExceeded(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded", node.start_mark)
        open_nodes.discard(key)
        measured[key] = (size, depth)
        return size, depth

    measure(root)
