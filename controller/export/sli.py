"""What Prometheus can compute of each journey's verdict: the primary checks ``qoectl verify`` decides on.

A window of ``verify.window`` is *bad* when a primary check measured in it
misses, *good* when every one is measured and met, and has no verdict
otherwise (:func:`controller.evaluate.engine._window_status`). Exported rules
compute the same from the series qoectl's Prometheus source reads: a journey's
``verify.queries`` or, without them, the ``qoectl_<metric>{journey="..."}``
families that measurement files and qoectl's exporters use.

Prometheus can compute a check when it is the mean of one metric over the
window, or the voice MOS (the E-model of the mean delay, jitter and loss, in
PromQL). A journey with a primary check it cannot compute (the 95th
percentile response time, the Apdex or error rate computed from single
transactions, stalls of video sessions) gets a note instead of rules, so no
alert can disagree with ``qoectl verify`` about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.evaluate.checks import CheckSpec, checks_for
from controller.measure import metrics as mt
from controller.model import Journey, VoiceTarget
from controller.pipeline import Build

MEAN = frozenset(
    {
        "one_way_delay_ms",
        "jitter_ms",
        "loss_pct",
        "throughput_kbps",
        "startup_s",
        "apdex",
        "error_rate_pct",
        "rebuffering_pct",
    }
)
MOS_INPUTS = ("one_way_delay_ms", "jitter_ms", "loss_pct")
# a check read directly from its own metric is replaced by verify with one computed from these when they are measured
COMPUTED_FROM = {
    "apdex": ("response_time_ms", "errors"),
    "error_rate_pct": ("response_time_ms", "errors"),
    "rebuffering_pct": ("stall_s", "session_duration_s"),
}
WHY_NOT = {
    "response_time_ms": "the 95th percentile (nearest rank) of single transactions has no PromQL equivalent",
}


@dataclass(frozen=True, slots=True)
class Note:
    journey: str
    message: str

    def text(self) -> str:
        return f"journey {self.journey}: {self.message}"

    def to_json(self) -> dict[str, str]:
        return {"journey": self.journey, "message": self.message}


@dataclass(frozen=True, slots=True)
class JourneySli:
    """One journey as the exported rules compute it."""

    journey: Journey
    checks: tuple[CheckSpec, ...]  # the primary checks, in verify's order
    sources: tuple[tuple[str, str], ...]  # (metric, PromQL of its samples), sorted by metric
    from_queries: bool  # False: the default qoectl_<metric> families

    @property
    def name(self) -> str:
        return self.journey.name

    @property
    def codec(self) -> str:
        t = self.journey.target
        return t.codec if isinstance(t, VoiceTarget) else "g711"

    @property
    def shown(self) -> CheckSpec:
        """The check drawn as the journey's QoE score (verify's plot metric: its first primary check)."""
        return self.checks[0]


def default_query(journey: str, metric: str) -> str:
    """The series of ``metric`` for ``journey`` when it has no ``verify.queries``."""
    return f'{mt.OPENMETRICS_PREFIX}{metric}{{journey="{journey}"}}'


def inputs(check: str) -> tuple[str, ...]:
    return MOS_INPUTS if check == "mos" else (check,)


def _problem(check: CheckSpec, queried: set[str] | None) -> str | None:
    """Why Prometheus cannot compute ``check`` from the journey's series, or None."""
    if check.name in WHY_NOT:
        return f"{check.name}: {WHY_NOT[check.name]}"
    if check.name != "mos" and check.name not in MEAN:
        return f"{check.name}: no PromQL form of this check"
    if queried is None:
        return None
    missing = [m for m in inputs(check.name) if m not in queried]
    if missing:
        return (
            f"{check.name}: verify.queries has no {', '.join(missing)}, so qoectl verify --prometheus "
            "cannot decide it either"
        )
    shadowing = [m for m in COMPUTED_FROM.get(check.name, ()) if m in queried]
    if shadowing:
        return f"{check.name}: qoectl verify computes it from the transactions ({', '.join(shadowing)})"
    return None


def plan_journey(build: Build, journey: Journey) -> JourneySli | Note:
    """The journey's SLI, or a note saying why Prometheus cannot compute what qoectl verify decides."""
    checks = tuple(c for c in checks_for(journey, build.budgets.get(journey.name), None) if c.primary)
    if not checks:
        return Note(journey.name, "no measurable target, so qoectl verify does not judge it: no rules")
    queried = {m for m, _ in journey.verify.queries} if journey.verify.queries else None
    problems = [p for p in (_problem(c, queried) for c in checks) if p]
    if problems:
        return Note(journey.name, "no rules: " + "; ".join(problems))
    needed = sorted({m for c in checks for m in inputs(c.name)})
    if queried is None:
        sources = tuple((m, default_query(journey.name, m)) for m in needed)
    else:
        given = dict(journey.verify.queries)
        sources = tuple((m, given[m]) for m in needed)
    return JourneySli(journey, checks, sources, queried is not None)


def plan(build: Build) -> tuple[tuple[JourneySli, ...], tuple[Note, ...]]:
    """Every journey of the policy, by name: the exportable ones and the notes on the others."""
    slis: list[JourneySli] = []
    notes: list[Note] = []
    for journey in sorted(build.policy.journeys, key=lambda j: j.name):
        got = plan_journey(build, journey)
        if isinstance(got, Note):
            notes.append(got)
        else:
            slis.append(got)
            if not got.from_queries:
                notes.append(
                    Note(
                        journey.name,
                        "no verify.queries: rules read the qoectl_<metric>{journey=...} families "
                        f"({', '.join(m for m, _ in got.sources)})",
                    )
                )
    return tuple(slis), tuple(notes)
