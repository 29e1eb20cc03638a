"""Composite journey QoE score (0-100 %) and the perception gap.

Every component is first put on a 0-100 scale:

* a MOS-like score on 1-5 (E-model MOS, P.1203.3 stall score, survey MOS):
  ``(mos - 1) / 4 * 100``;
* an Apdex score (0-1): ``apdex * 100``;
* a compliance share (journeys without a QoE model): the share of windows in
  target, already in percent;
* CSAT: the share of answers 4 or 5 on a 1-5 scale, in percent;
* NPS: ``% promoters (9-10) - % detractors (0-6)`` of 0-10 answers, mapped
  from -100..100 to 0..100 by ``(nps + 100) / 2``.

The composite is the weighted mean over the components that have data,
``sum(w_k * s_k) / sum(w_k)`` (weights from the journey's ``verify.weights``),
so a missing survey never counts as a zero. Bands: >= 80 excellent, 70-80
good, < 70 poor. See docs/qoe-models.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

EXCELLENT = 80.0
GOOD = 70.0
UNHAPPY_USERS = (
    "network within budget, users unhappy: look beyond QoS: application, device, usability "
    "(do not tune the network for this)"
)
CONTENT_USERS = (
    "network out of target, users content: the target may be stricter than users need; "
    "confirm it before changing the network"
)


def band(score: float) -> str:
    if score >= EXCELLENT:
        return "excellent"
    if score >= GOOD:
        return "good"
    return "poor"


def from_mos(mos: float) -> float:
    """1-5 -> 0-100 (clamped)."""
    return min(100.0, max(0.0, (mos - 1.0) / 4.0 * 100.0))


def from_apdex(score: float) -> float:
    return min(100.0, max(0.0, score * 100.0))


def csat_pct(answers: Iterable[float]) -> float:
    """Share (%) of answers of 4 or 5 on a 1-5 scale; raises ``ValueError`` when there are none."""
    values = list(answers)
    if not values:
        raise ValueError("no CSAT answers")
    return 100.0 * sum(1 for v in values if v >= 4) / len(values)


def nps(answers: Iterable[float]) -> float:
    """Net Promoter Score (-100..100) of 0-10 answers."""
    values = list(answers)
    if not values:
        raise ValueError("no NPS answers")
    promoters = sum(1 for v in values if v >= 9)
    detractors = sum(1 for v in values if v <= 6)
    return 100.0 * (promoters - detractors) / len(values)


def from_nps(score: float) -> float:
    return min(100.0, max(0.0, (score + 100.0) / 2.0))


@dataclass(frozen=True, slots=True)
class Composite:
    score: float  # 0-100
    band: str
    components: tuple[tuple[str, float, float], ...]  # (name, 0-100 score, weight), sorted by name


def composite(scores: Mapping[str, float | None], weights: Mapping[str, float]) -> Composite | None:
    """Weighted mean of the 0-100 ``scores`` that are present and weighted; ``None`` when none is."""
    used = sorted((k, v, weights.get(k, 0.0)) for k, v in scores.items() if v is not None and weights.get(k, 0.0) > 0)
    total = sum(w for _, _, w in used)
    if total <= 0:
        return None
    score = sum(v * w for _, v, w in used) / total
    return Composite(score, band(score), tuple(used))


def perception_gap(objective_in_target: bool | None, subjective: float | None) -> str | None:
    """Say so when measurements and users disagree; ``None`` when they agree or one side is unknown.

    ``objective_in_target``: whether the measurements met the journey's targets
    (``None``: unknown). ``subjective``: the users' feedback on 0-100.
    """
    if objective_in_target is None or subjective is None:
        return None
    if objective_in_target and subjective < GOOD:
        return UNHAPPY_USERS
    if not objective_in_target and subjective >= GOOD:
        return CONTENT_USERS
    return None
