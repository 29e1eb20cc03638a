"""Baselines: what each journey x segment measured under normal operation, and how now compares with it.

``qoectl baseline record`` stores, per journey x segment and per metric, the
distribution of the samples: count, mean and the 50th, 90th and 99th
percentiles (nearest rank: the smallest value with at least that share of the
samples at or below it). ``qoectl verify --baseline FILE`` (and the loop's
report, for the journeys a change touched) compares the same figures of the
samples evaluated now with it:

* a metric is **same** when its p50 and its p90 each moved by no more than the
  tolerance: 10 % of the baseline's value, or the metric's own floor
  (:data:`ABSOLUTE`, e.g. 1 ms of delay, 0.05 points of loss), whichever is
  larger; **worse** when one of them moved beyond it the wrong way
  (up for delay, jitter, loss, response time ...; down for throughput and
  Apdex); **better** when one moved beyond it the right way and none the wrong
  way;
* with fewer than :data:`MIN_SAMPLES` samples on either side the metric is
  **unknown** (too few to tell);
* a segment is worse when a metric is worse, better when a metric is better and
  none worse, same when every metric compared is the same; **new** when the
  baseline has no samples of it, **no data** when now has none, unknown when no
  metric could be compared.

Only metrics with a distribution are kept: not the DSCP (a code), users,
error counts, stall events or session lengths.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from controller.measure import metrics as mt
from controller.measure.samples import SampleSet, Segment, Vocabulary

FORMAT = "qoectl-baseline/1"
METRICS: tuple[str, ...] = (
    "one_way_delay_ms",
    "jitter_ms",
    "loss_pct",
    "reorder_pct",
    "throughput_kbps",
    "response_time_ms",
    "apdex",
    "error_rate_pct",
    "startup_s",
    "rebuffering_pct",
)
HIGHER_IS_BETTER = frozenset({"throughput_kbps", "apdex"})
RELATIVE = 0.10  # a change within 10 % of the baseline's value is "same" ...
ABSOLUTE: dict[str, float] = {  # ... or within this much, whichever is larger
    "one_way_delay_ms": 1.0,
    "jitter_ms": 0.5,
    "loss_pct": 0.05,
    "reorder_pct": 0.05,
    "throughput_kbps": 10.0,
    "response_time_ms": 5.0,
    "apdex": 0.01,
    "error_rate_pct": 0.1,
    "startup_s": 0.1,
    "rebuffering_pct": 0.1,
}
MIN_SAMPLES = 5
COMPARED = ("p50", "p90")

Change = Literal["better", "same", "worse", "unknown"]
SegmentChange = Literal["better", "same", "worse", "unknown", "new", "no data"]


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message says why."""


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The ``q`` percentile (0-100) of ascending ``ordered`` values by nearest rank: ``x[ceil(q/100 n) - 1]``."""
    n = len(ordered)
    if not n:
        return math.nan
    return float(ordered[max(0, math.ceil(q / 100.0 * n) - 1)])


@dataclass(frozen=True, slots=True)
class Distribution:
    count: int
    mean: float
    p50: float
    p90: float
    p99: float

    @staticmethod
    def of(values: Iterable[float]) -> Distribution:
        ordered = np.sort(np.fromiter(values, dtype=np.float64))
        if not len(ordered):
            raise ValueError("no values")
        as_list: list[float] = ordered.tolist()
        return Distribution(
            len(as_list),
            float(ordered.mean()),
            nearest_rank(as_list, 50),
            nearest_rank(as_list, 90),
            nearest_rank(as_list, 99),
        )

    def to_json(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "mean": _r(self.mean),
            "p50": _r(self.p50),
            "p90": _r(self.p90),
            "p99": _r(self.p99),
        }


def _r(x: float) -> float:
    return round(x, 6)


SegmentKey = tuple[str, str, str]  # journey, site (or ""), context


def segment_key(journey: str, segment: Segment) -> SegmentKey:
    return (journey, segment.name if segment.kind == "site" else "", segment.context)


def label(key: SegmentKey) -> str:
    journey, site, context = key
    return f"{journey}@{site}" if site else f"{journey}@{context} (context)"


@dataclass(frozen=True)
class Baseline:
    """Per journey x segment, per metric, the distribution of the samples of one range."""

    start: float | None
    end: float | None
    segments: Mapping[SegmentKey, Mapping[str, Distribution]]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "range": {"start": self.start, "end": self.end},
            "tolerance": {"relative": RELATIVE, "absolute": ABSOLUTE, "compared": list(COMPARED)},
            "segments": [
                {
                    "journey": key[0],
                    "site": key[1] or None,
                    "context": key[2],
                    "metrics": {name: d.to_json() for name, d in sorted(metrics.items())},
                }
                for key, metrics in sorted(self.segments.items())
            ],
        }

    def text(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"


def record(samples: SampleSet, vocab: Vocabulary, start: float | None = None, end: float | None = None) -> Baseline:
    """The distribution of every metric kept, per journey x segment, of the samples in ``(start, end]``."""
    keep = np.ones(len(samples), dtype=bool)
    if start is not None:
        keep &= samples.ts > start
    if end is not None:
        keep &= samples.ts <= end
    wanted = np.array([mt.INDEX[name] for name in METRICS], dtype=np.int32)
    keep &= np.isin(samples.metric, wanted)
    data = samples.select(keep)
    out: dict[SegmentKey, dict[str, Distribution]] = {}
    if len(data):
        groups = np.stack([data.journey.astype(np.int64), data.segment.astype(np.int64), data.metric.astype(np.int64)])
        keys, inverse = np.unique(groups, axis=1, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(keys.shape[1] + 1))
        for k in range(keys.shape[1]):
            journey, segment, metric = (int(x) for x in keys[:, k])
            values = data.value[order[bounds[k] : bounds[k + 1]]]
            key = segment_key(vocab.journeys[journey], vocab.segments[segment])
            out.setdefault(key, {})[mt.METRICS[metric].name] = Distribution.of(values)
    lo = start if start is not None else (float(samples.ts.min()) if len(samples) else None)
    hi = end if end is not None else (float(samples.ts.max()) if len(samples) else None)
    return Baseline(lo, hi, out)


def from_json(data: Any, source: str = "baseline") -> Baseline:
    """A baseline read back; :class:`BaselineError` names what is wrong."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BaselineError(f'{source}: not a qoectl baseline (expected "format": "{FORMAT}")')
    try:
        segments: dict[SegmentKey, dict[str, Distribution]] = {}
        for row in data["segments"]:
            key = (str(row["journey"]), str(row["site"] or ""), str(row["context"]))
            metrics: dict[str, Distribution] = {}
            for name, d in row["metrics"].items():
                if name not in METRICS:
                    raise BaselineError(f"{source}: unknown metric {name!r} for {label(key)}")
                metrics[name] = Distribution(
                    int(d["count"]), float(d["mean"]), float(d["p50"]), float(d["p90"]), float(d["p99"])
                )
            segments[key] = metrics
        rng = data.get("range") or {}
        return Baseline(rng.get("start"), rng.get("end"), segments)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, BaselineError):
            raise
        raise BaselineError(f"{source}: malformed baseline ({type(exc).__name__}: {exc})") from None


def read(path: Any) -> Baseline:
    from pathlib import Path

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{p}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{p}: not JSON: {exc}") from None
    return from_json(data, str(p))


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True, slots=True)
class MetricChange:
    metric: str
    change: Change
    before: Distribution | None
    after: Distribution | None
    tolerance: float  # for p50; p90's is RELATIVE x its own baseline, or the same floor

    def delta(self, stat: str) -> float | None:
        if self.before is None or self.after is None:
            return None
        return float(getattr(self.after, stat)) - float(getattr(self.before, stat))

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "change": self.change,
            "before": None if self.before is None else self.before.to_json(),
            "after": None if self.after is None else self.after.to_json(),
            "delta_p50": None if (d := self.delta("p50")) is None else _r(d),
            "delta_p90": None if (d := self.delta("p90")) is None else _r(d),
        }

    def describe(self) -> str:
        unit = mt.BY_NAME[self.metric].unit
        unit = f" {unit}" if unit and unit != "count" else ""
        if self.before is None or self.after is None:
            return f"{self.metric}: {self.change}"
        return (
            f"{self.metric} p50 {_f(self.before.p50)} -> {_f(self.after.p50)}{unit}, "
            f"p90 {_f(self.before.p90)} -> {_f(self.after.p90)}{unit}: {self.change}"
        )


def _f(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def tolerance(metric: str, before: float) -> float:
    return max(RELATIVE * abs(before), ABSOLUTE.get(metric, 0.0))


def compare_metric(metric: str, before: Distribution | None, after: Distribution | None) -> MetricChange:
    if before is None or after is None or before.count < MIN_SAMPLES or after.count < MIN_SAMPLES:
        tol = tolerance(metric, before.p50) if before is not None else ABSOLUTE.get(metric, 0.0)
        return MetricChange(metric, "unknown", before, after, tol)
    sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0  # > 0: better
    worse = better = False
    for stat in COMPARED:
        b, a = float(getattr(before, stat)), float(getattr(after, stat))
        moved = (a - b) * sign
        if moved < -tolerance(metric, b) - 1e-12:
            worse = True
        elif moved > tolerance(metric, b) + 1e-12:
            better = True
    change: Change = "worse" if worse else ("better" if better else "same")
    return MetricChange(metric, change, before, after, tolerance(metric, before.p50))


@dataclass(frozen=True, slots=True)
class SegmentComparison:
    key: SegmentKey
    change: SegmentChange
    metrics: tuple[MetricChange, ...]

    @property
    def label(self) -> str:
        return label(self.key)

    def to_json(self) -> dict[str, Any]:
        journey, site, context = self.key
        return {
            "journey": journey,
            "segment": {"site": site or None, "context": context},
            "change": self.change,
            "metrics": [m.to_json() for m in self.metrics],
        }


def compare(
    baseline: Baseline, now: Baseline, only: Iterable[SegmentKey] | None = None
) -> tuple[SegmentComparison, ...]:
    """Every journey x segment of ``now`` and of the baseline (or only those given), sorted."""
    keys = set(only) if only is not None else set(baseline.segments) | set(now.segments)
    out = []
    for key in sorted(keys):
        before = baseline.segments.get(key, {})
        after = now.segments.get(key, {})
        if not before and not after:
            continue  # measured neither then nor now: nothing to say
        metrics = tuple(compare_metric(m, before.get(m), after.get(m)) for m in METRICS if m in before or m in after)
        change: SegmentChange
        if not after:
            change = "no data"
        elif not before:
            change = "new"
        else:
            seen = {m.change for m in metrics}
            if "worse" in seen:
                change = "worse"
            elif "better" in seen:
                change = "better"
            elif "same" in seen:
                change = "same"
            else:
                change = "unknown"
        out.append(SegmentComparison(key, change, metrics))
    return tuple(out)


def comparison_json(baseline_file: str, changes: Sequence[SegmentComparison]) -> dict[str, Any]:
    counts = {
        c: sum(1 for x in changes if x.change == c) for c in ("worse", "better", "same", "unknown", "new", "no data")
    }
    return {
        "file": baseline_file,
        "tolerance": {
            "relative": RELATIVE,
            "absolute": ABSOLUTE,
            "compared": list(COMPARED),
            "min_samples": MIN_SAMPLES,
        },
        "summary": counts,
        "segments": [c.to_json() for c in changes],
    }


STYLE = {"worse": "red", "better": "green", "same": "", "unknown": "yellow", "new": "cyan", "no data": "yellow"}


def render_table(console: Any, changes: Sequence[SegmentComparison], baseline_file: str) -> None:
    """The change of each segment against the baseline, worst first, with the figures that decide it."""
    from rich.table import Table

    order = {"worse": 0, "better": 1, "unknown": 2, "new": 3, "no data": 4, "same": 5}
    table = Table(title=f"against the baseline {baseline_file} (p50 and p90; same: within 10 % or the metric's floor)")
    for col in ("journey @ segment", "change", "figures"):
        table.add_column(col)
    for c in sorted(changes, key=lambda c: (order[c.change], c.key)):
        decisive = [m for m in c.metrics if m.change == c.change] or list(c.metrics)
        figures = "; ".join(m.describe() for m in decisive[:3])
        style = STYLE[c.change]
        table.add_row(c.label, f"[{style}]{c.change}[/]" if style else c.change, figures)
    console.print(table)
    counts = comparison_json(baseline_file, changes)["summary"]
    shown = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    console.print(f"against the baseline: {shown or 'nothing to compare'}", markup=False)
