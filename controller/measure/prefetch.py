"""Measurement files parsed in threads while the policy loads: the parse needs no policy, only its check does.

``qoectl verify`` starts a :class:`Prefetch` for each CSV file before it imports the rest of what it needs
and loads the policy: pyarrow's parse (:func:`controller.measure.files.parse_fast`) runs in C, mostly
without the GIL, beside that work, and :func:`controller.measure.files.read_csv` converts the result when
it gets there. This module imports nothing heavy, so the thread starts before numpy and pyarrow are loaded
(the thread imports them).

It only saves time: a file the fast path declines, or one that could not be read (any error), gives
``None``, and the reader then reads the file by its exact paths, which report each problem with its line.
The thread is not a daemon: a command that ends before using the parse (a policy error) waits for it at
exit rather than let Arrow's threads outlive the interpreter.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.measure.fastcsv import Parsed


class Prefetch:
    """Pyarrow's parse of one CSV file, run in a thread of its own from the moment this is made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._parsed: tuple[dict[str, int], Parsed] | None = None
        self._thread = threading.Thread(target=self._run, name=f"qoectl-prefetch {path.name}")
        self._thread.start()

    def _run(self) -> None:
        try:
            from controller.measure.files import parse_fast

            self._parsed = parse_fast(self.path)
        except Exception:  # the exact reader meets the same error and reports it
            self._parsed = None

    def result(self) -> tuple[dict[str, int], Parsed] | None:
        """The file's columns and parse once the thread is done; ``None``: read it by the other paths."""
        self._thread.join()
        return self._parsed


def prefetch(paths: Sequence[Path]) -> tuple[Prefetch | None, ...]:
    """A :class:`Prefetch` for each ``.csv`` path (``None`` for other files), in the order given."""
    return tuple(Prefetch(p) if p.suffix.lower() == ".csv" else None for p in paths)
