"""Video streaming stalls: the stalling part of ITU-T P.1203.3 (clause 8.1.1), plus start-up and rebuffering.

For a session of media duration ``T`` seconds with stalls ``(p_i, l_i)``
(media position and length in seconds):

* weighted stall length ``L = sum l_i * w(T - p_i)``, with
  ``w(x) = 0.48412879 + 0.51587121 * 0.5 ** (x / 10)``: a stall near the end
  of the session weighs more, because it is remembered better;
* ``N`` the number of stalls; the initial stall (loading before playback,
  at position 0) counts as one;
* ``I`` the mean gap between consecutive stall positions (0 when N <= 1);
* stalling impact ``SI = exp(-N / 9.35158684) * exp(-(L / T) / 0.91890815)
  * exp(-(I / T) / 11.0567558)``;
* stall score ``1 + 4 * SI`` on the 1-5 MOS scale (P.1203.3 Eq. 31, O.23).

As in the ITU-T reference implementation, :func:`stall_score` leaves out
stalls of zero length and stalls beyond the end of the media. A stall after the
end of the media means the inputs disagree, so qoectl rejects them before
scoring (:func:`after_end`): ``qoectl qoe stalls`` exits 1, ``qoectl verify``
leaves the session out with a note; neither turns them into a perfect score.
Rebuffering ratio is the stall time after start-up over playing plus that stall
time. See docs/qoe-models.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

C_REF7 = 0.48412879
C_REF8 = 10.0
S1 = 9.35158684
S2 = 0.91890815
S3 = 11.0567558


@dataclass(frozen=True, slots=True, order=True)
class Stall:
    position_s: float  # media position where playback stopped
    length_s: float


@dataclass(frozen=True, slots=True)
class StallResult:
    stall_score: float  # 1-5
    stalling_impact: float  # SI, 0-1
    stalls: int  # N, the initial stall included
    weighted_length_s: float  # L
    mean_interval_s: float  # I
    duration_s: float  # T
    startup_s: float  # length of the stall at position 0 (0 when none)
    rebuffering_s: float  # stall time after start-up
    rebuffering_pct: float
    ignored: int  # zero-length stalls and stalls beyond the media


def weight(distance_from_end_s: float) -> float:
    """``w(x)``: how much a stall ``x`` seconds before the end of the media counts."""
    return C_REF7 + (1.0 - C_REF7) * float(0.5 ** (distance_from_end_s / C_REF8))


def parse_stall(text: str) -> Stall:
    """``"12.5:3"`` -> Stall(12.5, 3.0); raises ``ValueError`` saying what is expected."""
    pos, sep, length = text.partition(":")
    try:
        if not sep:
            raise ValueError
        stall = Stall(float(pos), float(length))
    except ValueError:
        raise ValueError(f"{text!r} is not POSITION:LENGTH in seconds, e.g. 0:1.5 or 42:3") from None
    if not (math.isfinite(stall.position_s) and math.isfinite(stall.length_s)):
        raise ValueError(f"{text!r}: position and length must be finite numbers")
    if stall.position_s < 0 or stall.length_s < 0:
        raise ValueError(f"{text!r}: position and length must not be negative")
    return stall


def after_end(duration_s: float, stalls: Iterable[Stall]) -> list[Stall]:
    """The stalls at a media position after ``duration_s``: inconsistent with the duration, never scored."""
    return [s for s in stalls if s.position_s > duration_s]


def stall_score(duration_s: float, stalls: Iterable[Stall]) -> StallResult:
    """Score one session of ``duration_s`` seconds of media (P.1203.3 stalling impact)."""
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise ValueError(f"the media duration must be above 0 s (got {duration_s})")
    given = sorted(stalls)
    for s in given:
        if s.position_s < 0 or s.length_s < 0:
            raise ValueError(f"stall {s.position_s}:{s.length_s}: position and length must not be negative")
    kept = [s for s in given if s.length_s > 0 and s.position_s <= duration_s]
    n = len(kept)
    weighted = sum(s.length_s * weight(duration_s - s.position_s) for s in kept)
    interval = 0.0
    if n > 1:
        interval = sum(b.position_s - a.position_s for a, b in itertools.pairwise(kept)) / (n - 1)
    si = math.exp(-n / S1) * math.exp(-(weighted / duration_s) / S2) * math.exp(-(interval / duration_s) / S3)
    startup = sum(s.length_s for s in kept if s.position_s == 0)
    rebuffering = sum(s.length_s for s in kept if s.position_s > 0)
    return StallResult(
        stall_score=1.0 + 4.0 * si,
        stalling_impact=si,
        stalls=n,
        weighted_length_s=weighted,
        mean_interval_s=interval,
        duration_s=duration_s,
        startup_s=startup,
        rebuffering_s=rebuffering,
        rebuffering_pct=rebuffering_ratio_pct(duration_s, rebuffering),
        ignored=len(given) - n,
    )


def rebuffering_ratio_pct(playing_s: float, rebuffering_s: float) -> float:
    """Stall time after start-up as a share of the time spent playing or stalled."""
    total = playing_s + rebuffering_s
    return 100.0 * rebuffering_s / total if total > 0 else 0.0
