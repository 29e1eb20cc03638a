"""Apdex: the share of transactions users are satisfied with (Apdex Alliance, Apdex Technical Specification 1.1).

``Apdex_T = (satisfied + tolerating / 2) / total`` where a transaction is

* *satisfied* when its response time is at or below the threshold ``T``,
* *tolerating* when it is above ``T`` and at or below ``4 T``,
* *frustrated* above ``4 T``; a failed transaction (an error) counts as
  frustrated, as the specification says, unless ``errors_frustrated`` is off,
  in which case errors are left out of the total.

Rating bands (the specification's): 0.94 excellent, 0.85 good, 0.70 fair,
0.50 poor, below that unacceptable. See docs/qoe-models.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

TOLERATING_FACTOR = 4.0
BANDS: tuple[tuple[float, str], ...] = (
    (0.94, "excellent"),
    (0.85, "good"),
    (0.70, "fair"),
    (0.50, "poor"),
)


def rating(score: float) -> str:
    """The specification's word for an Apdex score."""
    for floor, name in BANDS:
        if score >= floor:
            return name
    return "unacceptable"


@dataclass(frozen=True, slots=True)
class ApdexResult:
    score: float
    satisfied: int
    tolerating: int
    frustrated: int  # slow transactions, plus errors when they count as frustrated
    errors: int
    total: int  # transactions in the score's denominator
    threshold_ms: float

    @property
    def rating(self) -> str:
        return rating(self.score)


def from_counts(
    satisfied: int, tolerating: int, frustrated_slow: int, errors: int, threshold_ms: float, errors_frustrated: bool
) -> ApdexResult:
    """The score from counts; raises ``ValueError`` when nothing was counted (no data is not a score)."""
    if min(satisfied, tolerating, frustrated_slow, errors) < 0:
        raise ValueError("counts must not be negative")
    frustrated = frustrated_slow + (errors if errors_frustrated else 0)
    total = satisfied + tolerating + frustrated
    if total == 0:
        raise ValueError("no transactions to score" + ("" if errors_frustrated or not errors else " (only errors)"))
    score = (satisfied + tolerating / 2.0) / total
    return ApdexResult(score, satisfied, tolerating, frustrated, errors, total, threshold_ms)


def apdex(
    response_times_ms: Iterable[float | None], threshold_ms: float, errors_frustrated: bool = True
) -> ApdexResult:
    """Score response times in milliseconds; ``None`` stands for a failed transaction (an error)."""
    if not threshold_ms > 0:
        raise ValueError(f"the Apdex threshold T must be above 0 ms (got {threshold_ms})")
    satisfied = tolerating = slow = errors = 0
    limit = TOLERATING_FACTOR * threshold_ms
    for value in response_times_ms:
        if value is None:
            errors += 1
        elif value < 0:
            raise ValueError(f"a response time cannot be negative (got {value} ms)")
        elif value <= threshold_ms:
            satisfied += 1
        elif value <= limit:
            tolerating += 1
        else:
            slow += 1
    return from_counts(satisfied, tolerating, slow, errors, threshold_ms, errors_frustrated)
