"""The vectorised E-model of ``verify`` (:func:`controller.evaluate.measures.mos_of`) is the scalar one to the bit.

:mod:`controller.qoe.emodel` is the one definition of the E-model qoectl uses; ``verify`` computes the MOS of
thousands of (segment, window) groups at once with numpy, in the same operations and order. Hypothesis
draws delays, jitters and losses (around the delay knee, zero and tiny losses, R below 0) for every codec,
and every element must equal ``voice_quality(...).mos`` exactly.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.evaluate.measures import mos_of
from controller.qoe import emodel

values = st.one_of(
    st.floats(min_value=0.0, max_value=2000.0, allow_nan=False),
    st.sampled_from([0.0, 5e-324, 1e-9, emodel.D_KNEE - 10.0, emodel.D_KNEE - 10.0 + 1e-12, 100.0]),
)
losses = st.one_of(st.floats(min_value=0.0, max_value=100.0, allow_nan=False), st.sampled_from([0.0, 5e-324, 1e-12]))
rows = st.lists(st.tuples(values, values, losses), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(rows=rows, codec=st.sampled_from(sorted(emodel.CODECS)))
def test_vectorised_mos_is_the_scalar_one(rows: list[tuple[float, float, float]], codec: str) -> None:
    delay, jitter, loss = (np.array(column, dtype=np.float64) for column in zip(*rows, strict=True))
    got = mos_of(delay, jitter, loss, codec).tolist()
    want = [emodel.voice_quality(d, j, lo, codec).mos for d, j, lo in rows]
    assert got == want


def test_the_knee_and_the_ends_of_the_scale() -> None:
    """Both sides of the delay knee, R < 0 (MOS 1) and a perfect path, for every codec."""
    delay = np.array([0.0, 100.0, emodel.D_KNEE - 10.0, 300.0, 5000.0])
    zeros = np.zeros(len(delay))
    for codec in emodel.CODECS:
        for loss in (zeros, np.full(len(delay), 2.5)):
            got = mos_of(delay, zeros, loss, codec).tolist()
            assert got == [emodel.voice_quality(d, 0.0, lo, codec).mos for d, lo in zip(delay, loss, strict=True)]
            assert got[-1] == 1.0
