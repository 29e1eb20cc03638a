"""The engine's grouping by counting (``engine._unique``) is ``np.unique(..., return_inverse=True)``.

Both of its paths: counting, when the keys' range is small, and ``np.unique`` itself beyond it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.evaluate.engine import _unique


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.integers(min_value=0, max_value=5000), max_size=300), spare=st.integers(0, 200_000))
def test_grouping_by_counting_is_np_unique(keys: list[int], spare: int) -> None:
    key = np.array(keys, dtype=np.int64)
    size = (max(keys) + 1 if keys else 0) + spare
    want_keys, want_inverse = np.unique(key, return_inverse=True)
    got_keys, got_inverse = _unique(key, size)
    assert got_keys.dtype == want_keys.dtype
    assert got_keys.tolist() == want_keys.tolist()
    assert got_inverse.tolist() == want_inverse.tolist()
