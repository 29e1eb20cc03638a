"""The one worker pool (:mod:`controller.parallel`): the loader's ordered map and the pipeline's chunks run on it.

Whatever the number of workers, every item is done once and the results come back in the order of the
items, the same as ``map`` in this process; a worker that fails makes the caller raise.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.parallel import WorkerStats, can_fork, forked, ordered_map

pytestmark = pytest.mark.skipif(not can_fork(), reason="workers are forked; this system cannot fork")


def _work(item: tuple[int, str]) -> tuple[int, str, int]:
    number, text = item
    return number * 3, text[::-1], sum(range(number % 500))  # some items take longer than others


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    items=st.lists(st.tuples(st.integers(-1000, 10_000), st.text(max_size=20)), max_size=40),
    jobs=st.integers(1, 4),
)
def test_ordered_map_in_workers_is_map(items: list[tuple[int, str]], jobs: int) -> None:
    assert list(ordered_map(_work, items, jobs)) == list(map(_work, items))


def test_forked_gives_every_item_once_and_each_workers_figures() -> None:
    stats: list[WorkerStats] = []
    got = dict(forked(lambda n: n * n, list(range(50)), 3, stats))  # inherited by the forked workers
    assert got == {n: n * n for n in range(50)}
    assert len(stats) == 3 and len({s.pid for s in stats}) == 3 and os.getpid() not in {s.pid for s in stats}


def _fail(n: int) -> int:
    if n == 7:
        raise ValueError("item seven")
    return n


def test_a_worker_that_raises_makes_the_caller_raise() -> None:
    with pytest.raises(RuntimeError, match="item seven"):
        list(ordered_map(_fail, list(range(20)), 2))
