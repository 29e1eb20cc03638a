"""Measured samples + the compiled policy -> a verdict per journey and segment.

For each journey, samples are grouped per segment (site or context) and per
evaluation window (``verify.window``, aligned to the end of the range, so the
last window is "the last 5 minutes"). The same measures are computed for
every window and for the whole range (see :mod:`controller.evaluate.measures`):
the whole-range values are compared with the targets (pass, fail, margin), the
per-window verdicts feed the error budget and the burn-rate alerts.

A segment fails when a primary check fails over the range or when its
windows in target fall short of the objective. It passes only when every
primary check passed and even the windows without a verdict cannot pull it
below the objective. Anything else is *unknown*: no data is never a pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from controller.compile.budgets import Budget
from controller.evaluate import measures as ms
from controller.evaluate import slo
from controller.evaluate.checks import STATISTIC, CheckSpec, checks_for, plot_metric
from controller.measure.feedback import Answer
from controller.measure.samples import SampleSet, Segment, Vocabulary
from controller.model import Journey, Policy, VoiceTarget
from controller.plan import DevicePlan
from controller.qoe import composite as cq

Verdict = Literal["pass", "fail", "unknown"]
CheckStatus = Literal["pass", "fail", "unknown", "not measured"]  # unknown: measured, but only as a bound
START_EPSILON_S = 1e-3  # the first sample lies inside (start, end]
PRIORITY_WEIGHT = {"critical": 1.0, "high": 0.8, "normal": 0.6, "low": 0.4, "scavenger": 0.2}


@dataclass(frozen=True)
class Options:
    start: float | None = None  # None: the first sample
    end: float | None = None  # None: the last sample
    now: float = field(default_factory=time.time)
    journeys: tuple[str, ...] = ()  # only these; empty: all


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    op: str
    target: float
    unit: str
    primary: bool
    source: str
    statistic: str
    measured: float | None
    bound: bool  # measured is only an upper bound: some inputs were not measured
    status: CheckStatus  # "not measured": no sample of it in the range, never a failure
    margin: float | None  # towards the target's good side: positive is headroom
    margin_pct: float | None
    samples: int

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.measured is None:
            target = f"{self.target:.0f}" if self.name == "dscp" else _fmt(self.target)
            return f"{self.name}: not measured (target {self.op} {target}{unit})"
        at_most = "at most " if self.bound else ""
        verb = {"pass": "meets", "fail": "misses", "unknown": "cannot confirm"}[self.status]
        fmt = (lambda x: f"{x:.0f}") if self.name == "dscp" else _fmt
        return f"{self.name} {at_most}{fmt(self.measured)}{unit} {verb} {self.op} {fmt(self.target)}{unit}"


@dataclass(frozen=True, slots=True)
class QoeScore:
    model: str  # "E-model MOS", "Apdex", "P.1203.3 stall score", "compliance"
    value: float
    score: float  # 0-100


@dataclass(frozen=True, slots=True)
class FeedbackSummary:
    responses: tuple[tuple[str, int], ...]  # (kind, answers)
    survey_mos: float | None
    csat_pct: float | None
    nps: float | None
    score: float | None  # the subjective components alone, 0-100; None: too few answers
    min_responses: int


@dataclass(frozen=True, slots=True)
class SegmentResult:
    journey: str
    kind: str
    priority: str
    segment: Segment
    status: Verdict
    reasons: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    qoe: QoeScore | None
    composite: cq.Composite | None
    feedback: FeedbackSummary | None
    perception_gap: str | None
    error_budget: slo.ErrorBudget
    alerts: tuple[slo.BurnAlert, ...]
    users: float
    users_source: str
    severity: float
    impact: float
    samples: int
    in_scope: bool
    plot_metric: str
    series: tuple[tuple[float, float], ...]  # (window end, value of plot_metric)


@dataclass(frozen=True)
class Evaluation:
    start: float | None
    end: float | None
    results: tuple[SegmentResult, ...]  # worst first: the rank of results[i] is i + 1
    notes: tuple[str, ...]
    plot_targets: dict[str, CheckSpec]  # journey -> the check drawn as its target band

    @property
    def status(self) -> Verdict:
        if any(r.status == "fail" for r in self.results):
            return "fail"
        if not self.results or any(r.status == "unknown" for r in self.results):
            return "unknown"
        return "pass"

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for r in self.results if r.status == v) for v in ("fail", "unknown", "pass")}


def _fmt(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.3g}"


# --------------------------------------------------------------------------- entry point


class Compiled(Protocol):
    """What judging needs of a compiled policy (a :class:`controller.pipeline.Build` is one): plain values."""

    @property
    def policy(self) -> Policy: ...

    @property
    def budgets(self) -> Mapping[str, Budget]: ...

    @property
    def plans(self) -> Sequence[DevicePlan]: ...


def evaluate(
    build: Compiled, samples: SampleSet, answers: Sequence[Answer] = (), options: Options | None = None
) -> Evaluation:
    """Judge every journey with a measurable target; results ranked worst first."""
    opts = options or Options()
    policy = build.policy
    vocab = Vocabulary(policy)
    notes: list[str] = []
    start, end = _range(samples, opts)
    if len(samples) and start is not None and end is not None:
        inside = (samples.ts > start) & (samples.ts <= end)
        dropped = len(samples) - int(np.count_nonzero(inside))
        if dropped:
            notes.append(f"{dropped} sample(s) outside the range evaluated were left out")
            samples = samples.select(inside)
    if opts.start is not None or opts.end is not None:
        answers = [a for a in answers if (start is None or a.time > start) and (end is None or a.time <= end)]
    # A stable sort of 16-bit numbers is numpy's radix sort: the same order, several times faster.
    codes = samples.journey.astype(np.int16) if len(vocab.journeys) < 1 << 15 else samples.journey
    order = np.argsort(codes, kind="stable")
    sorted_journey = samples.journey[order]
    bounds = np.searchsorted(sorted_journey, np.arange(len(vocab.journeys) + 1))
    scope = _scope(build, vocab)
    dscp = _markings(build)
    results: list[SegmentResult] = []
    plot_targets: dict[str, CheckSpec] = {}
    for j, name in enumerate(vocab.journeys):
        if opts.journeys and name not in opts.journeys:
            continue
        journey = policy.journey(name)
        if journey is None:  # pragma: no cover - the vocabulary comes from the policy
            continue
        rows = order[bounds[j] : bounds[j + 1]]
        checks = checks_for(journey, build.budgets.get(name), dscp.get(name))
        if not checks:
            if len(rows):
                notes.append(f"journey {name} has no measurable target: {len(rows)} sample(s) not used")
            continue
        plot_targets[name] = next(c for c in checks if c.name == plot_metric(journey, checks))
        picked = samples.select(rows)
        mine = [a for a in answers if a.journey == name]
        results += _journey(journey, checks, picked, scope.get(name, set()), start, end, mine, vocab, notes)
    for name in opts.journeys:
        if name not in vocab.journey_code:
            notes.append(f"journey {name} is not in the policy")
    return Evaluation(start, end, _rank(results), tuple(notes), plot_targets)


def _range(samples: SampleSet, opts: Options) -> tuple[float | None, float | None]:
    """The range ``(start, end]`` evaluated; without --since it starts just before the first sample."""
    end = opts.end if opts.end is not None else (float(samples.ts.max()) if len(samples) else None)
    start = opts.start
    if start is None and len(samples):
        start = float(samples.ts.min()) - START_EPSILON_S
    if start is not None and end is not None and start >= end:
        start = end - START_EPSILON_S
    return start, end


def _scope(build: Compiled, vocab: Vocabulary) -> dict[str, set[int]]:
    """Journey -> segment codes of the sites whose devices carry it (the sites it promises something to)."""
    out: dict[str, set[int]] = {}
    for plan in build.plans:
        code = vocab.site_code.get(plan.site)
        if code is None:
            continue
        for rule in plan.markings:
            out.setdefault(rule.journey, set()).add(code)
    return out


def _markings(build: Compiled) -> dict[str, int]:
    out: dict[str, int] = {}
    for plan in build.plans:
        for rule in plan.markings:
            out.setdefault(rule.journey, rule.dscp)
    return out


# --------------------------------------------------------------------------- one journey


def _journey(
    journey: Journey,
    checks: tuple[CheckSpec, ...],
    data: SampleSet,
    scope: set[int],
    start: float | None,
    end: float | None,
    answers: Sequence[Answer],
    vocab: Vocabulary,
    notes: list[str],
) -> list[SegmentResult]:
    settings = journey.verify
    win = settings.window_s
    present = set(np.flatnonzero(np.bincount(data.segment, minlength=len(vocab.segments))).tolist())
    segments = sorted(scope | present | {a.segment for a in answers})
    outside = sorted(present - scope)
    if outside:
        labels = ", ".join(vocab.segments[s].label for s in outside)
        notes.append(f"journey {journey.name}: measurements at {labels}, where no device carries it (evaluated anyway)")
    if end is None or start is None:
        n_windows = 0
        window_of = np.zeros(0, dtype=np.int64)
    else:
        n_windows = max(1, math.ceil((end - start) / win - 1e-9))
        back = np.floor((end - data.ts) / win).astype(np.int64)
        window_of = np.clip(n_windows - 1 - back, 0, n_windows - 1)
    codec = journey.target.codec if isinstance(journey.target, VoiceTarget) else "g711"
    context = ms.Context(
        codec=codec,
        apdex_t_ms=getattr(journey.target, "apdex_t_ms", None),
        errors_frustrated=settings.errors_frustrated,
        dscp=next((c.target for c in checks if c.name == "dscp"), None),
    )
    sessions = ms.sessions(data, window_of)
    if sessions.unusable:
        notes.append(
            f"journey {journey.name}: {sessions.unusable} session(s) with stalls but no session_duration_s "
            "left out of the stall score"
        )
    if sessions.after_end:
        notes.append(
            f"journey {journey.name}: {sessions.after_end} session(s) with a stall after the end of the media "
            "(position_s > session_duration_s) left out of the stall score"
        )
    # per (segment, window)
    group_key = data.segment.astype(np.int64) * max(n_windows, 1) + window_of
    keys, group_of = _unique(group_key, len(vocab.segments) * max(n_windows, 1))
    per_window = ms.measures(
        data, group_of.astype(np.int64), len(keys), context, sessions, sessions.window_group(keys, n_windows)
    )
    # per segment, whole range
    n_segments = len(vocab.segments)
    per_segment = ms.measures(
        data, data.segment.astype(np.int64), n_segments, context, sessions, sessions.segment.astype(np.int64)
    )
    primary = [c for c in checks if c.primary]
    window_status = _window_status(primary, per_window, len(keys))
    status_matrix = np.zeros((n_segments, n_windows), dtype=np.int8)
    if len(keys):
        status_matrix[keys // max(n_windows, 1), keys % max(n_windows, 1)] = window_status
    shown = plot_metric(journey, checks)
    rows = np.array(segments, dtype=np.int64)
    budgets = slo.error_budgets(status_matrix[rows], win, settings.objective_pct, settings.period_s)
    alerts = slo.burn_alerts_rows(status_matrix[rows], win, settings.objective_pct, settings.period_s)
    key_segment = keys // max(n_windows, 1)
    bounds = np.searchsorted(key_segment, np.concatenate([rows, rows + 1]))
    plotted = per_window.value(shown)
    ends = (end - (n_windows - 1 - keys % max(n_windows, 1)) * win) if end is not None else keys.astype(np.float64)
    segment_values = ms.Lists(per_segment)
    drawn = np.flatnonzero(~np.isnan(plotted))  # NaN: nothing to draw in that window
    points = list(zip(ends[drawn].tolist(), plotted[drawn].tolist(), strict=True))  # (window end, value), as floats
    drawn_bounds = np.searchsorted(drawn, bounds).tolist()  # each segment's windows among the drawn ones
    columns = [_Column(c, segment_values) for c in checks]  # looked up once per journey, not per segment
    per_journey = _PerJourney(journey, _weights(journey))
    out = []
    for i, seg in enumerate(segments):
        series = tuple(points[drawn_bounds[i] : drawn_bounds[len(segments) + i]])
        out.append(
            _segment(
                per_journey,
                columns,
                vocab.segments[seg],
                seg,
                segment_values,
                budgets[i],
                alerts[i],
                seg in scope,
                [a for a in answers if a.segment == seg] if answers else [],
                shown,
                series,
            )
        )
    return out


def _unique(key: npt.NDArray[np.int64], size: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """``np.unique(key, return_inverse=True)`` for keys in ``[0, size)``: by counting when the range is small.

    The sorted distinct keys and each element's index among them, as ``np.unique`` gives them, in one pass
    instead of a sort (the keys are (segment, window) numbers, a few thousand for tens of thousands of samples).
    """
    if size > max(4 * len(key), 1 << 16):
        return np.unique(key, return_inverse=True)
    seen = np.bincount(key, minlength=size) > 0
    rank = np.cumsum(seen) - 1
    return np.flatnonzero(seen).astype(np.int64), rank[key]


def _window_status(primary: list[CheckSpec], values: ms.Measures, n: int) -> np.ndarray:
    """Per window: bad when a primary check measured in it misses, good when every one is measured and met.

    A primary check without a sample in the window leaves it unknown: what was not measured never fails a
    window, and never makes one good either.
    """
    bad = np.zeros(n, dtype=bool)
    good = np.ones(n, dtype=bool)
    for check in primary:
        v = values.value(check.name)
        bound = values.bounded(check.name)
        known = ~np.isnan(v)
        with np.errstate(invalid="ignore"):
            if check.op == "<=":
                ok = v <= check.target + 1e-9
            elif check.op == ">=":
                ok = v >= check.target - 1e-9
            else:
                ok = np.abs(v - check.target) < 1e-9
        bad |= known & ~ok
        good &= known & ok & ~bound
    status = np.full(n, slo.UNKNOWN, dtype=np.int8)
    status[good] = slo.GOOD
    status[bad] = slo.BAD
    return status


@dataclass(frozen=True, slots=True)
class _Column:
    """One check's whole-range figures per segment, as lists (one lookup per journey, not per segment).

    The check's own fields are copied out of its spec once here: ``_check`` reads them for every segment.
    """

    spec: CheckSpec
    value: list[float]
    bounded: list[bool]
    samples: list[int]
    statistic: str
    unit: str

    def __init__(self, spec: CheckSpec, values: ms.Lists) -> None:
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "value", values.value(spec.name))
        object.__setattr__(self, "bounded", values.bounded(spec.name))
        object.__setattr__(self, "samples", values.samples(spec.name))
        object.__setattr__(self, "statistic", STATISTIC.get(spec.name, "mean"))
        object.__setattr__(self, "unit", spec.unit)


@dataclass(frozen=True, slots=True)
class _PerJourney:
    journey: Journey
    weights: dict[str, float]


def _weights(journey: Journey) -> dict[str, float]:
    w = journey.verify.weights
    return {"objective": w.objective, "survey_mos": w.survey_mos, "csat": w.csat, "nps": w.nps}


def _check(column: _Column, seg: int) -> CheckResult:
    spec = column.spec
    raw = column.value[seg]
    status: CheckStatus
    margin = margin_pct = None
    if raw != raw:  # NaN: not measured
        measured = None
        bound = False
        status = "not measured"
    else:
        measured = raw
        bound = column.bounded[seg]
        ok = spec.passes(raw)
        status = "pass" if ok and not bound else ("fail" if not ok else "unknown")
        if spec.op != "==":
            margin = spec.target - raw if spec.op == "<=" else raw - spec.target
            margin_pct = 100.0 * margin / abs(spec.target) if spec.target else None
    return CheckResult(
        name=spec.name,
        op=spec.op,
        target=spec.target,
        unit=column.unit,
        primary=spec.primary,
        source=spec.source,
        statistic=column.statistic,
        measured=measured,
        bound=bound,
        status=status,
        margin=margin,
        margin_pct=margin_pct,
        samples=column.samples[seg],
    )


def _qoe(journey: Journey, values: ms.Lists, seg: int, budget: slo.ErrorBudget) -> QoeScore | None:
    kind = journey.kind
    if kind == "voice":
        mos = values.value("mos")[seg]
        if not math.isnan(mos) and not values.bounded("mos")[seg]:
            return QoeScore("E-model MOS", mos, cq.from_mos(mos))
    elif kind == "interactive":
        score = values.value("apdex")[seg]
        if not math.isnan(score):
            return QoeScore("Apdex", score, cq.from_apdex(score))
    else:
        stall = values.value("stall_score")[seg]
        if not math.isnan(stall):
            return QoeScore("P.1203.3 stall score", stall, cq.from_mos(stall))
    if budget.compliance_pct is not None and not budget.unknown:
        # With undecided windows the share of decided ones is biased (a window missing a stated target can
        # turn out bad but never good): no score rather than one that blames what was not measured.
        return QoeScore("windows in target", budget.compliance_pct / 100.0, budget.compliance_pct)
    return None


def _feedback(answers: Sequence[Answer], min_responses: int, weights: dict[str, float]) -> FeedbackSummary | None:
    if not answers:
        return None
    by_kind: dict[str, list[float]] = {}
    for a in answers:
        by_kind.setdefault(a.kind, []).append(a.score)
    enough = {k: v for k, v in by_kind.items() if len(v) >= min_responses}
    mos = sum(enough["mos"]) / len(enough["mos"]) if "mos" in enough else None
    csat = cq.csat_pct(enough["csat"]) if "csat" in enough else None
    nps = cq.nps(enough["nps"]) if "nps" in enough else None
    subjective = cq.composite(
        {
            "survey_mos": None if mos is None else cq.from_mos(mos),
            "csat": csat,
            "nps": None if nps is None else cq.from_nps(nps),
        },
        weights,
    )
    if subjective is None and enough:  # answers exist but their kinds are weighted 0: still tell the users' view
        parts = [
            x for x in (None if mos is None else cq.from_mos(mos), csat, None if nps is None else cq.from_nps(nps))
        ]
        values = [x for x in parts if x is not None]
        score = sum(values) / len(values) if values else None
    else:
        score = None if subjective is None else subjective.score
    return FeedbackSummary(tuple(sorted((k, len(v)) for k, v in by_kind.items())), mos, csat, nps, score, min_responses)


def _segment(
    per_journey: _PerJourney,
    columns: list[_Column],
    segment: Segment,
    seg: int,
    values: ms.Lists,
    budget: slo.ErrorBudget,
    alerts: tuple[slo.BurnAlert, ...],
    in_scope: bool,
    answers: Sequence[Answer],
    shown: str,
    series: tuple[tuple[float, float], ...],
) -> SegmentResult:
    journey = per_journey.journey
    s = journey.verify
    results = tuple([_check(c, seg) for c in columns])
    primary = [r for r in results if r.primary]
    reasons: list[str] = [r.describe() for r in primary if r.status == "fail"]
    if budget.met is False:
        reasons.append(
            f"{budget.compliance_high_pct:.1f} % of windows in target at best, objective {s.objective_pct:g} %"
        )
    reasons += [f"burn-rate {a.severity}: {a.name}" for a in alerts if a.firing]
    status: Verdict
    if any(r.status == "fail" for r in primary) or budget.met is False:
        status = "fail"
    elif all(r.status == "pass" for r in primary) and budget.met is True:
        status = "pass"
    elif not values.samples_total[seg]:
        status = "unknown"
        reasons.append("no measurements")
    else:
        status = "unknown"
        reasons += [r.describe() for r in primary if r.status in ("unknown", "not measured")]
        if budget.met is None and budget.windows:
            reasons.append(
                f"{budget.empty + budget.unknown} of {budget.windows} windows without a verdict: compliance "
                f"{budget.compliance_low_pct:.1f}-{budget.compliance_high_pct:.1f} % vs objective {s.objective_pct:g} %"
            )
    reasons += [f"secondary: {r.describe()}" for r in results if not r.primary and r.status == "fail"]
    weights = per_journey.weights
    qoe = _qoe(journey, values, seg, budget)
    fb = _feedback(answers, s.min_responses, weights)
    composite = cq.composite(
        {
            "objective": None if qoe is None else qoe.score,
            "survey_mos": None if fb is None or fb.survey_mos is None else cq.from_mos(fb.survey_mos),
            "csat": None if fb is None else fb.csat_pct,
            "nps": None if fb is None or fb.nps is None else cq.from_nps(fb.nps),
        },
        weights,
    )
    objective_ok = {"pass": True, "fail": False}.get(status)
    gap = cq.perception_gap(objective_ok, None if fb is None else fb.score)
    users, users_source = _users(journey, values, seg)
    severity = _severity(journey, primary, budget) if status == "fail" else 0.0
    decided = budget.good + budget.bad
    bad_share = budget.bad / decided if decided else 1.0
    impact = users * max(bad_share, 1.0 / max(budget.windows, 1)) * severity if status == "fail" else 0.0
    return SegmentResult(
        journey=journey.name,
        kind=journey.kind,
        priority=journey.priority,
        segment=segment,
        status=status,
        reasons=tuple(reasons),
        checks=results,
        qoe=qoe,
        composite=composite,
        feedback=fb,
        perception_gap=gap,
        error_budget=budget,
        alerts=alerts,
        users=users,
        users_source=users_source,
        severity=severity,
        impact=impact,
        samples=values.samples_total[seg],
        in_scope=in_scope,
        plot_metric=shown,
        series=series,
    )


def _users(journey: Journey, values: ms.Lists, seg: int) -> tuple[float, str]:
    measured = values.value("users_max")[seg]
    if not math.isnan(measured) and measured > 0:
        return measured, "measured (users metric, peak)"
    sessions = values.samples("sessions")[seg]
    if sessions:
        return float(sessions), "distinct sessions measured"
    if journey.bandwidth.concurrent_flows:
        return float(journey.bandwidth.concurrent_flows), "bandwidth.concurrent_flows"
    return 1.0, "unknown (counted as 1)"


def _miss(check: CheckResult) -> float:
    """How far a failed check is from its target, 0-1 (1: as bad as it gets or worse)."""
    if check.measured is None or check.status != "fail":
        return 0.0
    if check.op == "==":
        return 1.0
    if check.name == "mos":  # the scale starts at 1
        return min(1.0, (check.target - check.measured) / max(check.target - 1.0, 1e-9))
    if check.op == ">=":
        return min(1.0, (check.target - check.measured) / max(abs(check.target), 1e-9))
    return min(1.0, (check.measured - check.target) / max(abs(check.target), 1e-9))


def _severity(journey: Journey, primary: list[CheckResult], budget: slo.ErrorBudget) -> float:
    worst = max((_miss(c) for c in primary), default=0.0)
    if worst == 0.0 and budget.met is False:  # only the compliance objective is missed
        worst = min(1.0, (budget.objective_pct - budget.compliance_high_pct) / max(budget.objective_pct, 1e-9))
    return PRIORITY_WEIGHT.get(journey.priority, 0.6) * max(worst, 0.01)


def _rank(results: list[SegmentResult]) -> tuple[SegmentResult, ...]:
    """Failures by users affected x severity, then unknowns, then passes; ties by name: deterministic."""
    order = {"fail": 0, "unknown": 1, "pass": 2}
    ranked = sorted(results, key=lambda r: (order[r.status], -r.impact, r.journey, r.segment))
    return tuple(ranked)
