"""Secrets: resolved from the environment only, and scrubbed from everything qoectl writes or prints.

Why a process-wide redactor: a secret can reach text through routes nobody
planned for (a device echoing a line, an exception message from a library).
Every writer (audit log, result JSON, backups, console) passes its text through
:func:`redact`, so a leak needs two mistakes instead of one.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_secrets: set[str] = set()
MASK = "********"


class Secret:
    """A string that never shows itself in ``str``/``repr``/f-strings/logging."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(********)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def register(value: str) -> None:
    """Remember a secret value so :func:`redact` removes it (values under 4 characters are too common)."""
    if len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text
