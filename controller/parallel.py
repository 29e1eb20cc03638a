"""Worker processes: how many, whether they can be forked, and the one pool qoectl maps work over.

Workers are forked (not spawned) so that they start with what the parent has
already built (a loaded policy, compiled templates) instead of pickling it:
only the number of each item goes to a worker and only its result comes back.
Both users share this pool: the loader parses files in it (:func:`ordered_map`)
and the pipeline compiles and renders chunks of devices (:func:`forked`, for its
progress and the workers' figures).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """What one worker process used: CPU seconds and its peak memory (``VmHWM``, None without /proc).

    ``private_kib`` is the memory only this worker holds when it finishes
    (``Private_*`` of ``smaps_rollup``); the rest of its ``VmHWM`` is pages it
    shares with the parent it was forked from.
    """

    pid: int
    cpu_s: float
    peak_rss_kib: int | None
    private_kib: int | None


def ordered_map(fn: Callable[[A], R], items: Sequence[A], jobs: int) -> Iterator[R]:
    """``map(fn, items)``, in ``jobs`` forked workers when ``jobs`` > 1, results in the order of ``items``.

    Results are pickled; ``fn`` and ``items`` are inherited by the forked
    workers. With ``jobs`` <= 1, one item, or no fork, it runs here.
    """
    workers = min(jobs, len(items))
    if workers <= 1 or not can_fork():
        yield from map(fn, items)
        return
    waiting: dict[int, R] = {}
    following = 0
    for number, result in forked(fn, items, workers):
        waiting[number] = result
        while following in waiting:
            yield waiting.pop(following)
            following += 1


def forked(
    fn: Callable[[A], R], items: Sequence[A], workers: int, stats: list[WorkerStats] | None = None
) -> Iterator[tuple[int, R]]:
    """``(number, fn(items[number]))`` from ``workers`` forked processes, as each finishes; every item once.

    Each worker takes the next item's number until there are none. A worker that
    raises or dies raises :class:`RuntimeError` here (the others are stopped).
    Each worker's :class:`WorkerStats` is appended to ``stats`` when it ends.
    The collector is frozen while the workers run, so that their collections do
    not write to (and so copy) every page they share with this process; it runs
    in the workers (a worker's garbage is its own).
    """
    ctx = multiprocessing.get_context("fork")
    tasks = ctx.Queue()
    results = ctx.Queue()
    for number in range(len(items)):
        tasks.put(number)
    for _ in range(workers):
        tasks.put(None)
    gc.freeze()
    procs = [ctx.Process(target=_serve, args=(fn, items, tasks, results), daemon=True) for _ in range(workers)]
    try:
        for p in procs:
            p.start()
        done = ended = 0
        while done < len(items) or ended < workers:
            try:
                number, result = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a worker process exited with code {dead[0].exitcode}") from None
                continue
            if number == -1:
                raise RuntimeError(f"a worker process failed:\n{result}")
            if number == -2:
                ended += 1
                if stats is not None:
                    stats.append(result)
                continue
            done += 1
            yield number, result
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        gc.unfreeze()


def _serve(fn: Callable[[Any], Any], items: Sequence[Any], tasks: Any, results: Any) -> None:
    """A worker: take item numbers until None, send back (number, result); at the end, its own stats."""
    gc.enable()
    try:
        while (number := tasks.get()) is not None:
            results.put((number, fn(items[number])))
    except BaseException:  # reported to the parent, which raises
        results.put((-1, traceback.format_exc()))
        return
    cpu = time.process_time()
    results.put((-2, WorkerStats(os.getpid(), cpu, _proc_status_kib("VmHWM"), _private_kib())))


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _private_kib() -> int | None:
    try:
        lines = Path("/proc/self/smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    return sum(int(line.split()[1]) for line in lines if line.startswith(("Private_Clean:", "Private_Dirty:")))
