"""The E-model variant, checked against hand-computed values from its definition."""

from __future__ import annotations

import pytest

from controller.qoe import emodel


def test_g729a_best_mos_is_about_4_1() -> None:
    q = emodel.voice_quality(0, 0, 0, "g729a")
    # d = 10 ms -> Id = 0.24; Ie = 11 -> R = 93.2 - 0.24 - 11 = 81.96
    assert q.r == pytest.approx(81.96)
    assert q.mos == pytest.approx(1 + 0.035 * 81.96 + 7e-6 * 81.96 * (81.96 - 60) * (100 - 81.96))
    assert 4.09 < q.mos < 4.10


def test_delay_knee_and_loss_formula() -> None:
    # 180 ms one-way + 2 x 20 ms jitter + 10 = 230 ms > 177.3: Id = 0.024*230 + 0.11*(230-177.3)
    q = emodel.voice_quality(180, 20, 3, "g711")
    assert q.effective_delay_ms == pytest.approx(230)
    assert q.id == pytest.approx(0.024 * 230 + 0.11 * (230 - 177.3))
    assert q.ie_eff == pytest.approx(0 + 95 * 3 / (3 / 1 + 4.3))
    assert q.r == pytest.approx(93.2 - q.id - q.ie_eff)


@pytest.mark.parametrize(("r", "mos"), [(-5, 1.0), (0, 1.0), (101, 4.5), (100, 4.5)])
def test_mos_clamps(r: float, mos: float) -> None:
    assert emodel.mos_from_r(r) == pytest.approx(mos)


@pytest.mark.parametrize("mos", [1.5, 2.6, 3.6, 4.0, 4.3])
def test_r_from_mos_inverts(mos: float) -> None:
    assert emodel.mos_from_r(emodel.r_from_mos(mos)) == pytest.approx(mos, abs=1e-9)


@pytest.mark.parametrize("codec", ["g711", "g711-plc", "g729a"])
@pytest.mark.parametrize("loss", [0.1, 1.0, 5.0])
def test_loss_inverse(codec: str, loss: float) -> None:
    c = emodel.codec(codec)
    assert emodel.loss_for_impairment(emodel.loss_impairment(loss, c), c) == pytest.approx(loss)


@pytest.mark.parametrize("d", [10.0, 150.0, 177.3, 250.0, 400.0])
def test_delay_inverse(d: float) -> None:
    assert emodel.delay_for_impairment(emodel.delay_impairment(d)) == pytest.approx(d)


def test_unknown_codec_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown codec 'opus'"):
        emodel.voice_quality(10, 0, 0, "opus")
