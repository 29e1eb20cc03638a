"""Plain policy YAML straight from libyaml's events: values and positions in one pass.

Why: reading a large inventory was mostly PyYAML's pure-Python scanner, composer
and our node walk. For the plain YAML that policy files are, libyaml's C parser
gives the same events, and building values and positions directly from them
skips two whole passes over a node tree.

Only plain YAML takes this path. Anything that needs care - an alias or anchor,
an explicit tag, a merge key, a duplicate key, a non-scalar key, nesting deeper
than the limit, a tab or '?', a non-printable character, a syntax error - makes
:func:`plain_documents` return ``None``, and the caller reads the file with the
careful pure-Python path (``yamlsrc``), so every diagnostic and refusal stays
exactly what it was. For plain YAML the result equals that path's: the same
values (PyYAML's resolver and SafeConstructor decide every scalar), and the
same ``(line, column)`` for every data path.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.reader import Reader
from yaml.resolver import Resolver

try:
    from yaml import _yaml as _libyaml
except ImportError:  # pragma: no cover - PyYAML without libyaml: always the careful path
    _libyaml = None  # type: ignore[assignment]

AVAILABLE = _libyaml is not None
STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"

Positions = dict[tuple[str | int, ...], tuple[int, int]]


class _NeedsCare(Exception):
    """Raised inside the walk: leave this file to the careful path."""


def _position(event: Any) -> tuple[int, int]:
    """1-based (line, column), as the careful path reports them."""
    return (event.start_mark.line + 1, event.start_mark.column + 1)


class _Walk:
    def __init__(self, parser: Any, max_depth: int, positions: bool = True) -> None:
        self.get = parser.get_event
        self.positions = positions
        self.max_depth = max_depth
        self.resolver = Resolver()
        self.constructor = SafeConstructor()
        self.tags: dict[tuple[str, Any], str] = {}

    def tag(self, event: Any) -> str:
        if event.tag is not None and event.tag != "!":
            raise _NeedsCare
        key = (event.value, event.implicit)
        tag = self.tags.get(key)
        if tag is None:
            tag = self.tags[key] = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
        return tag

    def scalar(self, event: Any, tag: str) -> Any:
        if tag == STR_TAG:
            return event.value
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return self.constructor.construct_object(node, deep=True)
        except ConstructorError:
            raise _NeedsCare from None

    def value(self, event: Any, path: tuple[str | int, ...], positions: Positions, depth: int) -> Any:
        if depth > self.max_depth or event.anchor is not None:
            raise _NeedsCare
        if self.positions and path not in positions:
            positions[path] = _position(event)
        kind = type(event)
        if kind is yaml.ScalarEvent:
            return self.scalar(event, self.tag(event))
        if kind is yaml.MappingStartEvent and event.tag in (None, "!"):
            out: dict[str, Any] = {}
            while True:
                key_event: Any = self.get()
                if type(key_event) is yaml.MappingEndEvent:
                    return out
                if type(key_event) is not yaml.ScalarEvent or key_event.anchor is not None:
                    raise _NeedsCare
                tag = self.tag(key_event)
                if tag == MERGE_TAG:
                    raise _NeedsCare
                key = self.scalar(key_event, tag)
                if not isinstance(key, str):
                    key = str(key)
                if key in out:
                    raise _NeedsCare
                if self.positions:
                    child = (*path, key)
                    positions[child] = _position(key_event)
                    out[key] = self.value(self.get(), child, positions, depth + 1)
                else:
                    out[key] = self.value(self.get(), path, positions, depth + 1)
        if kind is yaml.SequenceStartEvent and event.tag in (None, "!"):
            items: list[Any] = []
            while True:
                item = self.get()
                if type(item) is yaml.SequenceEndEvent:
                    return items
                items.append(self.value(item, (*path, len(items)) if self.positions else path, positions, depth + 1))
        raise _NeedsCare  # an alias, a tagged collection or anything unexpected


def plain_documents(text: str, max_depth: int, positions: bool = True) -> list[tuple[int, Any, Positions]] | None:
    """``[(index, data, positions)]`` for each document, or ``None`` when the file needs the careful path.

    With ``positions`` False the positions are left empty (faster, and a large inventory's positions
    take more memory than its values): :func:`~controller.load.yamlsrc.load_documents` finds them
    again from the text when a diagnostic needs one.
    """
    if _libyaml is None or "\t" in text or "?" in text or Reader.NON_PRINTABLE.search(text):
        # libyaml accepts some tabs, and '?' inside flow collections, that PyYAML refuses: the careful path decides.
        return None
    parser = _libyaml.CParser(text)
    walk = _Walk(parser, max_depth, positions)
    docs: list[tuple[int, Any, Positions]] = []
    try:
        walk.get()  # stream start
        while type(event := walk.get()) is yaml.DocumentStartEvent:
            found: Positions = {}
            data = walk.value(walk.get(), (), found, 1)
            if type(walk.get()) is not yaml.DocumentEndEvent:
                return None
            docs.append((len(docs), data, found))
        if type(event) is not yaml.StreamEndEvent:
            return None
    except (yaml.YAMLError, _NeedsCare, RecursionError):
        return None
    finally:
        parser.dispose()
    return docs
