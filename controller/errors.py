"""Diagnostics: every user-facing problem, located in the user's own YAML.

A diagnostic prints as ``file:line:col: field.path: message (hint: ...)`` so that
editors and CI logs can jump straight to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from controller.locations import Location

__all__ = ["Diagnostic", "Location", "PolicyError", "Severity", "errors_only", "sort_diagnostics"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    location: Location
    field: str
    message: str
    hint: str = ""
    severity: Severity = "error"
    related: tuple[Location, ...] = ()

    def format(self) -> str:
        head = f"{self.location}: "
        if self.field:
            head += f"{self.field}: "
        text = head + self.message
        if self.related:
            text += " (see " + ", ".join(str(r) for r in self.related) + ")"
        if self.hint:
            text += f"; hint: {self.hint}"
        if self.severity == "warning":
            text = "warning: " + text
        return text

    def sort_key(self) -> tuple[str, int, int, str, str]:
        loc = self.location
        return (loc.file, loc.line, loc.col, self.field, self.message)

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.location.file,
            "line": self.location.line,
            "col": self.location.col,
            "field": self.field,
            "message": self.message,
            "hint": self.hint,
            "severity": self.severity,
            "related": [str(r) for r in self.related],
        }


@dataclass
class PolicyError(Exception):
    """Raised when a policy repository has one or more errors; carries them all."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Stable, deduplicated, file/line ordered."""
    seen: set[tuple[object, ...]] = set()
    out: list[Diagnostic] = []
    for d in sorted(diags, key=Diagnostic.sort_key):
        key = (d.location, d.field, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def errors_only(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity == "error"]
