"""Worker processes: how many, whether they can be forked, and an ordered map over them.

Workers are forked (not spawned) so that they start with what the parent has
already built (a loaded policy, compiled templates) instead of pickling it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

A = TypeVar("A")
R = TypeVar("R")


def default_jobs() -> int:
    """The CPUs this process may use (``os.cpu_count`` where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Workers are forked so they inherit the parent's state without pickling it; not every OS can."""
    return "fork" in multiprocessing.get_all_start_methods()


def ordered_map(fn: Callable[[A], R], items: Sequence[A], jobs: int) -> Iterator[R]:
    """``map(fn, items)``, in ``jobs`` forked workers when ``jobs`` > 1, results in the order of ``items``.

    ``fn`` must be a module-level function; its arguments and results are
    pickled. With ``jobs`` <= 1, one item, or no fork, it runs here.
    """
    workers = min(jobs, len(items))
    if workers <= 1 or not can_fork():
        yield from map(fn, items)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(fn, items, chunksize=1)
