"""The web, video and composite QoE models, checked against values computed by hand from their definitions."""

from __future__ import annotations

import math

import pytest

from controller.qoe import apdex, composite, stalls

# --------------------------------------------------------------------------- Apdex


def test_apdex_counts_satisfied_tolerating_frustrated_and_errors() -> None:
    # T = 500: 100 and 500 satisfied; 501 and 2000 tolerating; 2001 frustrated; one error
    result = apdex.apdex([100, 500, 501, 2000, 2001, None], 500)
    assert (result.satisfied, result.tolerating, result.frustrated, result.errors) == (2, 2, 2, 1)
    assert result.total == 6
    assert result.score == pytest.approx((2 + 2 / 2) / 6)
    assert result.rating == "poor"


def test_apdex_errors_can_be_left_out() -> None:
    result = apdex.apdex([100, 500, 501, 2000, 2001, None], 500, errors_frustrated=False)
    assert result.total == 5
    assert result.score == pytest.approx(3 / 5)


@pytest.mark.parametrize(
    ("score", "rating"),
    [
        (1.0, "excellent"),
        (0.94, "excellent"),
        (0.9399, "good"),
        (0.85, "good"),
        (0.8499, "fair"),
        (0.70, "fair"),
        (0.6999, "poor"),
        (0.50, "poor"),
        (0.4999, "unacceptable"),
        (0.0, "unacceptable"),
    ],
)
def test_apdex_rating_bands(score: float, rating: str) -> None:
    assert apdex.rating(score) == rating


def test_apdex_without_transactions_is_an_error_not_a_score() -> None:
    with pytest.raises(ValueError, match="no transactions"):
        apdex.apdex([], 500)
    with pytest.raises(ValueError, match="only errors"):
        apdex.apdex([None, None], 500, errors_frustrated=False)
    with pytest.raises(ValueError, match="negative"):
        apdex.apdex([-1.0], 500)
    with pytest.raises(ValueError, match="above 0"):
        apdex.apdex([1.0], 0)


# --------------------------------------------------------------------------- P.1203.3 stalls


def _si(n: int, weighted: float, interval: float, duration: float) -> float:
    return (
        math.exp(-n / 9.35158684)
        * math.exp(-(weighted / duration) / 0.91890815)
        * math.exp(-(interval / duration) / 11.0567558)
    )


def test_stall_weight_is_the_p1203_memory_curve() -> None:
    assert stalls.weight(0) == pytest.approx(1.0)
    assert stalls.weight(10) == pytest.approx(0.48412879 + 0.51587121 / 2)
    assert stalls.weight(1e6) == pytest.approx(0.48412879)


def test_stall_score_by_hand() -> None:
    # T = 60 s; initial loading 2 s at 0 and a 3 s stall at 30 s
    w60 = 0.48412879 + 0.51587121 * 0.5 ** (60 / 10)
    w30 = 0.48412879 + 0.51587121 * 0.5 ** (30 / 10)
    weighted = 2 * w60 + 3 * w30
    result = stalls.stall_score(60, [stalls.Stall(30, 3), stalls.Stall(0, 2)])
    assert result.stalls == 2
    assert result.weighted_length_s == pytest.approx(weighted)
    assert result.mean_interval_s == pytest.approx(30)
    assert result.stall_score == pytest.approx(1 + 4 * _si(2, weighted, 30, 60))
    assert result.startup_s == 2 and result.rebuffering_s == 3
    assert result.rebuffering_pct == pytest.approx(100 * 3 / 63)


def test_no_stall_scores_five_and_one_stall_has_no_interval() -> None:
    assert stalls.stall_score(120, []).stall_score == pytest.approx(5.0)
    one = stalls.stall_score(120, [stalls.Stall(60, 4)])
    assert one.mean_interval_s == 0
    w = 0.48412879 + 0.51587121 * 0.5 ** (60 / 10)
    assert one.stall_score == pytest.approx(1 + 4 * _si(1, 4 * w, 0, 120))


def test_more_and_later_stalls_score_lower() -> None:
    early = stalls.stall_score(100, [stalls.Stall(5, 3)]).stall_score
    late = stalls.stall_score(100, [stalls.Stall(95, 3)]).stall_score
    two = stalls.stall_score(100, [stalls.Stall(5, 3), stalls.Stall(50, 3)]).stall_score
    assert late < early
    assert two < early


def test_zero_length_and_out_of_media_stalls_are_left_out() -> None:
    result = stalls.stall_score(30, [stalls.Stall(10, 0), stalls.Stall(40, 2), stalls.Stall(5, 1)])
    assert result.stalls == 1
    assert result.ignored == 2


@pytest.mark.parametrize("text", ["5", "a:1", "1:b", "-1:2", "1:-2", "nan:1", ""])
def test_parse_stall_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError, match=r"POSITION:LENGTH|negative|finite"):
        stalls.parse_stall(text)


def test_parse_stall() -> None:
    assert stalls.parse_stall("12.5:3") == stalls.Stall(12.5, 3.0)


def test_duration_must_be_positive() -> None:
    with pytest.raises(ValueError, match="above 0"):
        stalls.stall_score(0, [])


# --------------------------------------------------------------------------- composite


def test_scales() -> None:
    assert composite.from_mos(1) == 0 and composite.from_mos(5) == 100 and composite.from_mos(4) == 75
    assert composite.from_apdex(0.9) == pytest.approx(90)
    assert composite.csat_pct([5, 4, 3, 1]) == 50
    assert composite.nps([10, 9, 8, 7, 6, 0]) == pytest.approx(0)
    assert composite.nps([10, 10, 0]) == pytest.approx(100 / 3)
    assert composite.from_nps(-100) == 0 and composite.from_nps(100) == 100


@pytest.mark.parametrize(
    ("score", "band"), [(100, "excellent"), (80, "excellent"), (79.9, "good"), (70, "good"), (69.9, "poor")]
)
def test_bands(score: float, band: str) -> None:
    assert composite.band(score) == band


def test_composite_weights_only_what_is_there() -> None:
    weights = {"objective": 0.6, "survey_mos": 0.2, "csat": 0.1, "nps": 0.1}
    result = composite.composite({"objective": 75.0, "survey_mos": 25.0, "csat": None, "nps": None}, weights)
    assert result is not None
    assert result.score == pytest.approx((0.6 * 75 + 0.2 * 25) / 0.8)
    assert result.band == "poor"
    assert [name for name, _, _ in result.components] == ["objective", "survey_mos"]
    assert composite.composite({"objective": None}, weights) is None
    assert composite.composite({"objective": 90.0}, {"objective": 0.0, "csat": 1.0}) is None


def test_perception_gap_both_ways_and_only_when_they_disagree() -> None:
    assert composite.perception_gap(True, 40.0) == composite.UNHAPPY_USERS
    assert "look beyond QoS" in composite.UNHAPPY_USERS
    assert composite.perception_gap(False, 85.0) == composite.CONTENT_USERS
    assert composite.perception_gap(True, 85.0) is None
    assert composite.perception_gap(False, 40.0) is None
    assert composite.perception_gap(None, 40.0) is None
    assert composite.perception_gap(True, None) is None
