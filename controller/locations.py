"""Where things were written: the location types every stage shares (a leaf: it imports nothing of qoectl).

A :class:`Location` is a file, line and column; a :data:`YamlPath` is the path
of keys and list indexes inside one YAML document; a :class:`YamlDocument` is a
document's data with the position of every path in it. ``load`` builds them,
``model`` keeps them in each object's ``Origin``, ``errors`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a policy file (1-based line and column)."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One YAML document: its data and a map from data path to position."""

    file: str
    index: int
    data: Any
    positions: dict[YamlPath, tuple[int, int]]

    def locate(self, path: YamlPath) -> Location:
        """The position of ``path``, or of its nearest ancestor that exists."""
        probe = tuple(path)
        while probe:
            pos = self.positions.get(probe)
            if pos is not None:
                return Location(self.file, pos[0], pos[1])
            probe = probe[:-1]
        pos = self.positions.get((), (1, 1))
        return Location(self.file, pos[0], pos[1])


def printable(text: str) -> str:
    """``text`` with newlines and other invisible characters escaped, so one diagnostic stays one line."""
    return text if text.isprintable() else repr(text)[1:-1]


def dotted(path: YamlPath) -> str:
    """``spec.target[0].mos``: a path as the field name diagnostics print."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + printable(part)
    return text
