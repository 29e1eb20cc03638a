"""The loop's report: for every change it made, the before and after of the journeys it touched.

``before`` and ``after`` are :class:`controller.evaluate.baseline.Baseline` summaries of two ranges (e.g. the
cycles before a change and those after it, from :func:`controller.evaluate.baseline.record`); each change gets
the comparison (better / same / worse, with the p50 and p90 figures) of every journey x segment it touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.adjust.engine import Action, touched_by
from controller.evaluate.baseline import Baseline, SegmentComparison, compare
from controller.model import Policy


@dataclass(frozen=True, slots=True)
class ChangeReport:
    action: Action
    segments: tuple[SegmentComparison, ...]

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action.to_json(), "segments": [s.to_json() for s in self.segments]}


def before_after(
    actions: Iterable[Action], policy: Policy, before: Baseline, after: Baseline
) -> tuple[ChangeReport, ...]:
    """Per change, the comparison of the journeys x segments it touched (those measured then or now)."""
    return tuple(ChangeReport(a, compare(before, after, only=touched_by(a, policy))) for a in actions)
