"""Safe YAML loading that remembers where every value came from.

PyYAML's ``SafeLoader`` composes the node tree (no Python tags can run); we then
build plain Python values ourselves so that each mapping key and sequence item
keeps its line and column, and so that duplicate keys (silently overwritten by
PyYAML) become errors instead of lost data.

Aliases (``*name``) are refused while composing: a self-referencing alias would
recurse forever and a "billion laughs" file would expand to gigabytes, and
neither has a place in a policy file. Nesting is capped for the same reason.
Any explicit tag other than the plain YAML ones is an error, on scalars and on
mappings/sequences alike (``!!python/object/apply:os.system [...]`` is a tagged
sequence).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import yaml

from controller.errors import Diagnostic
from controller.load import fastyaml
from controller.locations import Location, YamlDocument, dotted, printable
from controller.locations import YamlPath as Path

__all__ = ["Path", "YamlDocument", "dotted", "load_documents", "printable"]


MAX_DEPTH = 64
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
STR_TAG = "tag:yaml.org,2002:str"


class _Refused(yaml.composer.ComposerError):
    """Valid YAML that a policy file may not use; carries its own hint."""

    def __init__(self, problem: str, mark: yaml.Mark, hint: str) -> None:
        super().__init__(None, None, problem, mark)
        self.hint = hint


class _PolicyLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and absurd nesting at the exact place they occur."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event: Any = self.peek_event()  # type: ignore[no-untyped-call]
            raise _Refused(
                f"YAML aliases (*{event.anchor}) are not supported", event.start_mark, "write the value out in full"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark, "flatten the document")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            plain = MAP_TAG if isinstance(node, yaml.MappingNode) else SEQ_TAG
            if node.tag != plain:
                hint = "remove the tag: only plain YAML is read"
                self._problem(node, path, f"unsupported YAML tag {node.tag!r}", hint)
                return None
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
                self._problem(
                    key_node, child, f"duplicate key '{printable(key)}' (first defined on line {line})", "keep only one"
                )
                continue
            first_seen[key] = self._loc(key_node)
            self.positions[child] = self._loc(key_node)
            out[key] = self.build(value_node, child)
        return out

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self._problem(node, path, "a mapping or list cannot be used as a key", "use a plain string key")
            return "<invalid>"
        if node.tag == STR_TAG:  # what construct_object returns for a plain string, without its bookkeeping
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self._problem(node, path, f"unsupported YAML tag {node.tag!r}", "remove the tag: only plain YAML is read")
            del exc
            return None

    def _problem(self, node: yaml.Node, path: Path, message: str, hint: str) -> None:
        line, col = self._loc(node)
        self.problems.append(Diagnostic(Location(self.file, line, col), dotted(path), message, hint))


# YAML 1.1 reads these as line breaks, editors and `git diff` do not: line numbers would disagree with what
# the user sees, and a name could be split in two behind their back. They are refused before parsing.
_HIDDEN_BREAKS = {"\x85": "U+0085 NEXT LINE", "\u2028": "U+2028 LINE SEPARATOR", "\u2029": "U+2029 PARAGRAPH SEPARATOR"}


def _hidden_breaks(text: str, file: str) -> list[Diagnostic]:
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        for col, char in enumerate(line, start=1):
            if char in _HIDDEN_BREAKS:
                out.append(
                    Diagnostic(
                        Location(file, number, col),
                        "",
                        f"the file contains a raw {_HIDDEN_BREAKS[char]}, which YAML reads as a line break",
                        "remove it (editors do not show it as a new line)",
                    )
                )
    return out


class FilePositions:
    """The positions of every document of one file's text, found by one parse when a document first asks.

    Shared by the :class:`LazyPositions` of a file's documents: validation sorts items in file order,
    which reads every document's positions, and a file of many documents must be parsed once for all
    of them, not once per document. The text is kept zlib-compressed until then (a generated fleet's YAML
    is a fortieth of its size compressed; the texts of a large policy were a tenth of a plan's memory).
    """

    __slots__ = ("_found", "_packed")

    def __init__(self, text: str | bytes, found: dict[int, dict[Path, tuple[int, int]]] | None = None) -> None:
        # bytes: the text already compressed (a copy's)
        self._packed = text if isinstance(text, bytes) else zlib.compress(text.encode("utf-8", "surrogatepass"), 1)
        self._found = found

    def of(self, index: int) -> dict[Path, tuple[int, int]]:
        if self._found is None:
            text = zlib.decompress(self._packed).decode("utf-8", "surrogatepass")
            plain = fastyaml.plain_documents(text, MAX_DEPTH)
            if plain is not None:
                self._found = {i: p for i, _, p in plain}
            else:  # a file the careful path reads (the positions are only asked for when it had no problem)
                docs, _ = _load_documents(text, "", _PolicyLoader)
                self._found = {d.index: d.positions for d in docs}
            self._packed = b""
        return self._found.get(index, {})

    def __reduce__(self) -> tuple[Any, ...]:
        return (FilePositions, (self._packed, self._found))


class LazyPositions(dict[Path, tuple[int, int]]):
    """The positions of document ``index`` of a file's ``text``, found from the text the first time they are read.

    A policy's positions are only read for a diagnostic, and for a large
    inventory they take several times the memory of its values; so the fast
    path leaves them out and this finds them when asked, by the same parser
    that would have recorded them (the same ``(line, column)`` for every path).
    """

    __slots__ = ("_source",)

    def __init__(self, text: str | FilePositions, index: int) -> None:
        super().__init__()
        file = FilePositions(text) if isinstance(text, str) else text
        self._source: tuple[FilePositions, int] | None = (file, index)

    def _fill(self) -> None:
        if self._source is not None:
            file, index = self._source
            self._source = None
            self.update(file.of(index))

    def __reduce__(self) -> tuple[Any, ...]:
        if self._source is not None:
            return (LazyPositions, self._source)
        return (dict, (dict(self),))

    def get(self, key: Path, default: Any = None) -> Any:
        self._fill()
        return super().get(key, default)

    def __getitem__(self, key: Path) -> tuple[int, int]:
        self._fill()
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._fill()
        return super().__contains__(key)

    def __iter__(self) -> Iterator[Path]:
        self._fill()
        return super().__iter__()

    def __len__(self) -> int:
        self._fill()
        return super().__len__()

    def __eq__(self, other: object) -> bool:
        self._fill()
        if isinstance(other, LazyPositions):
            other._fill()
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def items(self) -> Any:
        self._fill()
        return super().items()

    def keys(self) -> Any:
        self._fill()
        return super().keys()

    def values(self) -> Any:
        self._fill()
        return super().values()


def load_documents(text: str, file: str) -> tuple[list[YamlDocument], list[Diagnostic]]:
    """Parse every document in ``text``; syntax errors become diagnostics."""
    if any(char in text for char in _HIDDEN_BREAKS):
        return [], _hidden_breaks(text, file)
    plain = fastyaml.plain_documents(text, MAX_DEPTH, positions=False)  # None: the file needs the careful path
    if plain is not None:
        positions = FilePositions(text)  # one parse for every document's positions, when the first is read
        return [YamlDocument(file, index, data, LazyPositions(positions, index)) for index, data, _ in plain], []
    return _load_documents(text, file, _PolicyLoader)


def _load_documents(text: str, file: str, loader: type[_PolicyLoader]) -> tuple[list[YamlDocument], list[Diagnostic]]:
    docs: list[YamlDocument] = []
    problems: list[Diagnostic] = []
    try:
        nodes: Iterator[yaml.Node] = yaml.compose_all(text, Loader=loader)
        for index, node in enumerate(nodes):
            if node is None:
                continue
            builder = _Builder(file)
            data = builder.build(node, ())
            problems.extend(builder.problems)
            docs.append(YamlDocument(file, index, data, builder.positions))
    except _Refused as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problems.append(Diagnostic(Location(file, line, col), "", str(exc.problem), exc.hint))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = printable(str(exc.problem or exc.context or "invalid YAML"))
        problems.append(
            Diagnostic(Location(file, line, col), "", f"YAML syntax error: {message}", "check indentation and quoting")
        )
    except yaml.YAMLError as exc:  # pragma: no cover - non-marked errors are rare
        problems.append(Diagnostic(Location(file), "", f"YAML error: {exc}", "check the file is valid YAML"))
    return docs, problems
