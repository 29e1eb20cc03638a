"""Consoles shared by every command."""

from __future__ import annotations

import os

from rich.console import Console


def make_console(stderr: bool = False) -> Console:
    """A console for humans; in CI logs (no terminal, no COLUMNS) tables get 160 columns instead of 80."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=160)
    return console
