"""What one cycle of ``qoectl loop`` saw: the input of :func:`controller.adjust.decide`.

Everything here is a frozen value; the loop builds one :class:`Observation` per
cycle from what it measured and read:

* the verify engine's verdict per journey x segment (:class:`SegmentStatus`,
  from :class:`controller.evaluate.engine.SegmentResult`), with the perception
  gap the users' feedback gives;
* per journey x segment, the measured figures the decision rules use
  (:class:`JourneyFigures`: one-way delay p50/p99, jitter, loss, MOS/Apdex, the
  DSCPs seen on arrival, and when known the WAN interface the traffic left by);
* per device WAN interface, the router's own queue state (:class:`QueueState`:
  backlog and drops of the root and of each class, the rate it delivered, and
  the downstream / ISP capacity when something knows it);
* per device, whether it drifted from the compiled policy (:class:`DeviceDrift`,
  from an apply dry run);
* per SD-WAN edge and transport, the transport's health as the edge measures it
  (:class:`~controller.adjust.health.TransportHealth`: delay, jitter, loss between
  its address and a peer's on that transport), which path steering compares with
  each journey's SLA class.

Helpers build the parts from qoectl's own results: :meth:`Observation.of`
(an evaluation), :func:`figures_from_samples` (measurement samples) and
:func:`drift_from` (an apply dry run).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from controller.adjust.health import TransportHealth
from controller.apply.result import FleetResult
from controller.evaluate.baseline import nearest_rank
from controller.evaluate.engine import Evaluation, SegmentResult, Verdict
from controller.measure import metrics as mt
from controller.measure.samples import SampleSet, Segment, Vocabulary


def segment_name(segment: Segment) -> str:
    """The segment as the loop names it: the site, or the context for measurements without a site."""
    return segment.name


@dataclass(frozen=True, slots=True)
class SegmentStatus:
    """The verify engine's verdict on one journey at one segment (site or context)."""

    journey: str
    segment: str
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    perception_gap: str | None = None  # the users' feedback disagrees with the measurements (qoe-models.md)

    @property
    def key(self) -> str:
        return f"{self.journey}@{self.segment}"

    @staticmethod
    def of(result: SegmentResult) -> SegmentStatus:
        return SegmentStatus(
            result.journey, segment_name(result.segment), result.status, result.reasons, result.perception_gap
        )


@dataclass(frozen=True, slots=True)
class JourneyFigures:
    """What was measured of one journey at one segment in the cycle (None: not measured)."""

    journey: str
    segment: str
    one_way_delay_p50_ms: float | None = None
    one_way_delay_p99_ms: float | None = None
    jitter_ms: float | None = None
    loss_pct: float | None = None
    mos: float | None = None
    apdex: float | None = None
    dscp_seen: tuple[int, ...] = ()  # every DSCP the probes saw on arrival
    device: str | None = None  # the WAN egress the measured traffic left by, when the measurement knows it
    interface: str | None = None

    @property
    def key(self) -> str:
        return f"{self.journey}@{self.segment}"

    def measurements(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in ("one_way_delay_p50_ms", "one_way_delay_p99_ms", "jitter_ms", "loss_pct", "mos", "apdex"):
            value = getattr(self, name)
            if value is not None and math.isfinite(value):
                out[name] = float(value)
        return out


@dataclass(frozen=True, slots=True)
class ClassQueue:
    """One class's queue on a WAN interface: the most bytes seen waiting in the cycle (or at its end, when only
    that is read), and the packets dropped during it. ``class_name`` is the plan's class (``telephony`` ...)."""

    class_name: str
    backlog_bytes: int = 0
    drops: int = 0


@dataclass(frozen=True, slots=True)
class QueueState:
    """The router's own queues on one WAN interface during the cycle.

    From the lab's :class:`controller.lab.measure.InterfaceQueues` of a router: ``backlog_bytes`` its
    ``max_backlog_bytes``, ``drops`` its ``drops``, ``delivered_kbps`` its ``sent_bytes`` x 8 / the window,
    the classes by the plan's class of each HTB class; ``capacity_kbps`` is a hint such as the ISP's rate
    when something knows it (the loop also works without: it takes the rate delivered).
    """

    device: str
    interface: str
    backlog_bytes: int = 0  # the root (shaper): the most seen waiting in the cycle
    drops: int = 0
    classes: tuple[ClassQueue, ...] = ()
    delivered_kbps: float | None = None  # what the interface sent, averaged over the cycle
    capacity_kbps: float | None = None  # the downstream / ISP capacity, when known (a hint)

    def of_class(self, name: str) -> ClassQueue | None:
        return next((c for c in self.classes if c.class_name == name), None)


@dataclass(frozen=True, slots=True)
class DeviceDrift:
    """Whether a device runs its compiled policy (an apply dry run found nothing to change) or not."""

    device: str
    drifted: bool
    detail: str = ""  # what differs, e.g. "+3 -1 lines"


@dataclass(frozen=True)
class Observation:
    """Everything one cycle saw; ``time`` is seconds since the epoch (the decision's clock)."""

    time: float
    segments: tuple[SegmentStatus, ...]
    figures: tuple[JourneyFigures, ...] = ()
    queues: tuple[QueueState, ...] = ()
    drift: tuple[DeviceDrift, ...] = ()
    transports: tuple[TransportHealth, ...] = ()

    @staticmethod
    def of(
        evaluation: Evaluation,
        time: float,
        figures: Iterable[JourneyFigures] = (),
        queues: Iterable[QueueState] = (),
        drift: Iterable[DeviceDrift] = (),
        transports: Iterable[TransportHealth] = (),
    ) -> Observation:
        """An observation from the verify engine's evaluation; MOS/Apdex taken from it where figures lack them."""
        qoe = {
            f"{r.journey}@{segment_name(r.segment)}": (r.qoe.model, r.qoe.value) for r in evaluation.results if r.qoe
        }
        merged = []
        for f in figures:
            model, value = qoe.get(f.key, ("", math.nan))
            mos = f.mos if f.mos is not None or model != "E-model MOS" else value
            apdex = f.apdex if f.apdex is not None or model != "Apdex" else value
            merged.append(dataclasses.replace(f, mos=mos, apdex=apdex))
        return Observation(
            time,
            tuple(SegmentStatus.of(r) for r in evaluation.results),
            tuple(merged),
            tuple(queues),
            tuple(drift),
            tuple(transports),
        )


def figures_from_samples(samples: SampleSet, vocab: Vocabulary) -> tuple[JourneyFigures, ...]:
    """Per journey x segment of the samples: one-way delay p50/p99 (nearest rank), mean jitter and loss, and every
    DSCP seen on arrival."""
    out = []
    if not len(samples):
        return ()
    codes = {name: mt.INDEX[name] for name in ("one_way_delay_ms", "jitter_ms", "loss_pct", "dscp")}
    pairs = np.unique(np.stack([samples.journey.astype(np.int64), samples.segment.astype(np.int64)]), axis=1)
    for journey, segment in pairs.T.tolist():
        here = (samples.journey == journey) & (samples.segment == segment)

        def values(metric: str, here: np.ndarray = here) -> list[float]:
            picked: list[float] = np.sort(samples.value[here & (samples.metric == codes[metric])]).tolist()
            return picked

        delay, jitter, loss, dscp = (values(m) for m in ("one_way_delay_ms", "jitter_ms", "loss_pct", "dscp"))
        out.append(
            JourneyFigures(
                journey=vocab.journeys[journey],
                segment=segment_name(vocab.segments[segment]),
                one_way_delay_p50_ms=nearest_rank(delay, 50) if delay else None,
                one_way_delay_p99_ms=nearest_rank(delay, 99) if delay else None,
                jitter_ms=sum(jitter) / len(jitter) if jitter else None,
                loss_pct=sum(loss) / len(loss) if loss else None,
                dscp_seen=tuple(sorted({int(d) for d in dscp})),
            )
        )
    return tuple(out)


def drift_from(result: FleetResult) -> tuple[DeviceDrift, ...]:
    """Drift per device from an apply dry run: ``would_change`` drifted (or never got the policy), ``unchanged``
    did not; a device that could not be read is left out (its drift is not known)."""
    out = []
    for r in result.results:
        if r.status == "would_change":
            out.append(DeviceDrift(r.device, True, f"+{r.added} -{r.removed} lines"))
        elif r.status == "unchanged":
            out.append(DeviceDrift(r.device, False))
    return tuple(out)
