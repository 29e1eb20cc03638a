"""Safe YAML loading that remembers where every value came from.

PyYAML's ``SafeLoader`` composes the node tree (no Python tags can run); we then
build plain Python values ourselves so that each mapping key and sequence item
keeps its line and column, and so that duplicate keys (silently overwritten by
PyYAML) become errors instead of lost data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from controller.errors import Diagnostic, Location

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One YAML document: its data and a map from data path to position."""

    file: str
    index: int
    data: Any
    positions: dict[Path, tuple[int, int]]

    def locate(self, path: Path) -> Location:
        """The position of ``path``, or of its nearest ancestor that exists."""
        probe = tuple(path)
        while probe:
            pos = self.positions.get(probe)
            if pos is not None:
                return Location(self.file, pos[0], pos[1])
            probe = probe[:-1]
        pos = self.positions.get((), (1, 1))
        return Location(self.file, pos[0], pos[1])


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path, tuple[int, int]] = {}
        self.problems: list[Diagnostic] = []
        self._constructor = yaml.SafeLoader("")

    def _loc(self, node: yaml.Node) -> tuple[int, int]:
        return (node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.positions.setdefault(path, self._loc(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_seen: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._problem(key_node, path, "YAML merge keys (<<) are not supported", "write the keys out")
                continue
            key = self._scalar(key_node, path)
            if not isinstance(key, str):
                key = str(key)
            child = path + (key,)
            if key in first_seen:
                line, _ = first_seen[key]
                self._problem(key_node, child, f"duplicate key '{key}' (first defined on line {line})", "keep only one")
                continue
            first_seen[key] = self._loc(key_node)
            self.positions[child] = self._loc(key_node)
            out[key] = self.build(value_node, child)
        return out

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self._problem(node, path, "a mapping or list cannot be used as a key", "use a plain string key")
            return "<invalid>"
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self._problem(node, path, f"unsupported YAML tag {node.tag!r}", "remove the tag: only plain YAML is read")
            del exc
            return None

    def _problem(self, node: yaml.Node, path: Path, message: str, hint: str) -> None:
        line, col = self._loc(node)
        self.problems.append(Diagnostic(Location(self.file, line, col), _dotted(path), message, hint))


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text


dotted = _dotted


def load_documents(text: str, file: str) -> tuple[list[YamlDocument], list[Diagnostic]]:
    """Parse every document in ``text``; syntax errors become diagnostics."""
    docs: list[YamlDocument] = []
    problems: list[Diagnostic] = []
    try:
        nodes: Iterator[yaml.Node] = yaml.compose_all(text, Loader=yaml.SafeLoader)
        for index, node in enumerate(nodes):
            if node is None:
                continue
            builder = _Builder(file)
            data = builder.build(node, ())
            problems.extend(builder.problems)
            docs.append(YamlDocument(file, index, data, builder.positions))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = str(exc.problem or exc.context or "invalid YAML")
        problems.append(
            Diagnostic(Location(file, line, col), "", f"YAML syntax error: {message}", "check indentation and quoting")
        )
    except yaml.YAMLError as exc:  # pragma: no cover - non-marked errors are rare
        problems.append(Diagnostic(Location(file), "", f"YAML error: {exc}", "check the file is valid YAML"))
    return docs, problems
