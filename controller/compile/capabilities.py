"""Check a device plan against what its platform can express.

Every unsupported need is reported at once, naming the journey that needs it
and why the platform cannot express it. Needs with a documented fallback
(``Renderer.degradable``) become notes on the plan instead of errors.

Each message says whose limit it is. A capability the renderer lacks is the
device's limit ("device X (platform) cannot express ...") unless the renderer
lists it in ``Renderer.not_rendered_yet`` (the platform documents it, qoectl
does not render it yet); a limit is the device's unless its name is in
``Limits.qoectl_limits``. qoectl's own limits are worded "qoectl's <platform>
renderer does not support ... yet", so nobody is told a device cannot do what
its vendor documents.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass

from controller import capabilities as cap
from controller.capabilities import Capabilities as Renderer
from controller.errors import Diagnostic, Location
from controller.model import Device, Policy
from controller.plan import Allocation, DevicePlan, MarkingRule, QosClass


@dataclass(frozen=True, slots=True)
class Need:
    capability: str
    journey: str | None  # None: needed by the device itself (e.g. a sub-rate link)
    field: tuple[str | int, ...]  # where in the journey (or device) document


def needs(plan: DevicePlan) -> Iterator[Need]:
    """Every capability the plan needs, with who needs it: its journeys' first, then the device's own."""
    yield from journey_needs(plan.markings, plan.classes).needs
    yield from _device_needs(plan, frozenset())


@dataclass(frozen=True, slots=True, eq=False)
class JourneyNeeds:
    """What a plan's markings and classes need, in :func:`needs` order, with each capability's positions.

    The same for every device the same journeys reach (memoised by
    :func:`journey_needs`); :func:`check_plan` then only walks the needs its
    platform cannot meet instead of every need of every device.
    """

    needs: tuple[Need, ...]
    capabilities: frozenset[str]
    positions: Mapping[str, tuple[int, ...]]

    def verdict(self, caps: frozenset[str], degradable: frozenset[str]) -> tuple[tuple[str, ...], tuple[Need, ...]]:
        """On a platform with ``caps``: the degradable capabilities missing (in order of first need), and
        the needs to report as errors (the first per capability and journey, in order)."""
        if self.capabilities <= caps:
            return (), ()
        return _verdict(self, caps, degradable)


@functools.lru_cache(maxsize=4096)
def _verdict(
    shared: JourneyNeeds, caps: frozenset[str], degradable: frozenset[str]
) -> tuple[tuple[str, ...], tuple[Need, ...]]:
    """:meth:`JourneyNeeds.verdict`, memoised: a scope group meets the same few platforms again and again.

    ``JourneyNeeds`` compares by identity (``eq=False``): one object per scope group.
    """
    missing = shared.capabilities - caps
    ordered = (shared.needs[i] for i in sorted(i for c in missing for i in shared.positions[c]))
    return _walk(ordered, caps, degradable)


def _walk(
    found: Iterable[Need],
    caps: frozenset[str],
    degradable: Collection[str],
    degraded_before: tuple[str, ...] = (),
    reported_before: tuple[Need, ...] = (),
) -> tuple[tuple[str, ...], tuple[Need, ...]]:
    """Sort the needs a platform cannot meet into degraded capabilities and errors, continuing from earlier ones.

    A degradable capability counts once, at its first need; an error is reported
    once per capability and journey. Returns everything so far (``*_before`` first).
    """
    degraded = list(degraded_before)
    to_report = list(reported_before)
    reported = {(n.capability, n.journey) for n in reported_before}
    for need in found:
        if need.capability in caps:
            continue
        if need.capability in degradable:
            if need.capability not in degraded:
                degraded.append(need.capability)
            continue
        if (need.capability, need.journey) in reported:
            continue
        reported.add((need.capability, need.journey))
        to_report.append(need)
    return tuple(degraded), tuple(to_report)


@functools.lru_cache(maxsize=1024)
def journey_needs(markings: tuple[MarkingRule, ...], classes: tuple[QosClass, ...]) -> JourneyNeeds:
    """:class:`JourneyNeeds` of these markings and classes, memoised: plans of one scope group share them."""
    found = tuple(_marking_and_class_needs(markings, classes))
    positions: dict[str, list[int]] = {}
    for i, n in enumerate(found):
        positions.setdefault(n.capability, []).append(i)
    return JourneyNeeds(found, frozenset(positions), {c: tuple(ix) for c, ix in positions.items()})


def _marking_and_class_needs(markings: tuple[MarkingRule, ...], classes: tuple[QosClass, ...]) -> Iterator[Need]:
    for rule in markings:
        yield Need(cap.MARKING, rule.journey, ("spec", "traffic", "match"))
        for i, m in enumerate(rule.matches):
            if any(lo != hi for lo, hi in m.source_ports + m.destination_ports):
                yield Need(cap.PORT_RANGES, rule.journey, ("spec", "traffic", "match", i))
            if m.family == "ipv6":
                yield Need(cap.IPV6, rule.journey, ("spec", "traffic", "match", i))
    for c in classes:
        for j in c.journeys:
            yield Need(cap.QUEUING, j, ("spec", "priority"))
            if c.strict:
                yield Need(cap.STRICT_PRIORITY, j, ("spec", "target"))
            if c.aqm:
                yield Need(cap.AQM, j, ("spec", "target"))
            if c.fair_queue:
                yield Need(cap.FAIR_QUEUE, j, ("spec", "target"))


def _device_needs(plan: DevicePlan, met: frozenset[str]) -> Iterator[Need]:
    """The device's own needs (after its journeys'), leaving out capabilities in ``met``."""
    if cap.SHAPING not in met:
        for iface in plan.interfaces:
            if iface.shape_kbps:
                yield Need(cap.SHAPING, None, ("interfaces",))
    if cap.SDWAN_SLA not in met:
        for s in plan.sla_classes:
            for j in s.journeys:
                yield Need(cap.SDWAN_SLA, j, ("spec", "target"))
    if cap.SDWAN_PATH not in met:
        for p in plan.path_preferences:
            yield Need(cap.SDWAN_PATH, p.journey, ("spec", "sdwan"))


def not_yet(renderer: Renderer, what: str) -> str:
    """The wording of a limit that is qoectl's own: its renderer does not support ``what`` yet."""
    return f"qoectl's {renderer.platform} renderer does not support {what} yet"


def _unsupported(renderer: Renderer, capability: str, device: str, who: str) -> tuple[str, str]:
    """Message and hint for a need the platform cannot meet, worded after whose limit it is."""
    text = cap.CAPABILITY_TEXT[capability]
    where = renderer.not_rendered_yet.get(capability)
    if where is None:
        return (
            f"device {device} ({renderer.platform}) cannot express {text}, needed by {who}",
            "scope the journey away from this device, or change the journey so it does not need it",
        )
    return (
        f"{not_yet(renderer, text)}, needed by {who} on device {device}",
        f"{renderer.platform} itself documents it ({where}); until qoectl renders it, scope the journey away "
        "from this device or change the journey so it does not need it",
    )


def _whose(renderer: Renderer, limits: set[str], what: str, ours: str, theirs: str) -> str:
    """``theirs`` when the limits named are the device's; when they are qoectl's, that its renderer lacks ``what``."""
    if limits & renderer.limits.qoectl_limits:
        return f"{not_yet(renderer, what)}: {ours}"
    return theirs


def degraded_note(renderer: Renderer, capability: str) -> str:
    """The note for a capability expressed with its documented fallback, worded after whose limit it is."""
    text = cap.CAPABILITY_TEXT[capability]
    fallback = renderer.degradable[capability]
    if capability in renderer.not_rendered_yet:
        return f"{not_yet(renderer, text)}: {fallback}"
    return f"{text} is not available on {renderer.platform}: {fallback}"


def check_plan(
    plan: DevicePlan,
    renderer: Renderer,
    device: Device,
    policy: Policy,
) -> tuple[list[Diagnostic], tuple[str, ...]]:
    """Errors for what the platform cannot express, and notes for what it expresses with a fallback."""
    caps = renderer.capabilities_for(device.features)
    errors: list[Diagnostic] = []
    notes: list[str] = []

    def where(journey: str | None, field: tuple[str | int, ...]) -> tuple[Location, str]:
        j = policy.journey(journey) if journey else None
        if j is not None:
            return j.origin.at(*field), j.origin.field(*field)
        return device.origin.at("platform"), device.origin.field("platform")

    shared = journey_needs(plan.markings, plan.classes)
    degraded, to_report = _walk(
        _device_needs(plan, caps), caps, renderer.degradable, *shared.verdict(caps, frozenset(renderer.degradable))
    )
    for need in to_report:
        loc, field = where(need.journey, need.field)
        who = f"journey '{need.journey}'" if need.journey else "the device"
        errors.append(Diagnostic(loc, field, *_unsupported(renderer, need.capability, plan.device, who)))
    for c in degraded:
        notes.append(degraded_note(renderer, c))
    lim = renderer.limits
    queued = [c for c in plan.classes]
    if len(queued) > lim.max_classes:
        loc, field = device.origin.at("platform"), device.origin.field("platform")
        names = ", ".join(c.name for c in queued)
        message = _whose(
            renderer,
            {"max_classes"},
            f"more than {lim.max_classes} queues",
            f"device {plan.device} needs {len(queued)} ({names})",
            f"device {plan.device} needs {len(queued)} queues ({names}) "
            f"but {renderer.platform} offers {lim.max_classes}",
        )
        errors.append(Diagnostic(loc, field, message, "map some journeys to a shared service_class"))
    strict = plan.strict_classes
    if len(strict) > lim.max_strict_classes:
        first = strict[lim.max_strict_classes].journeys[0] if strict[lim.max_strict_classes].journeys else None
        loc, field = where(first, ("spec", "service_class"))
        names = ", ".join(c.name for c in strict)
        message = _whose(
            renderer,
            {"max_strict_classes"},
            f"more than {lim.max_strict_classes} strict-priority classes",
            f"device {plan.device} needs {len(strict)} ({names})",
            f"device {plan.device} needs {len(strict)} strict-priority classes ({names}) "
            f"but {renderer.platform} allows {lim.max_strict_classes}",
        )
        errors.append(Diagnostic(loc, field, message, "put the real-time journeys in one strict class"))
    errors += _bandwidth_limits(plan, renderer, device)
    errors += renderer.check(plan, device, policy)
    notes += renderer.notes(plan)
    for s in plan.sla_classes:
        j = s.journeys[0]
        for value, (lo, hi), label, limit in (
            (s.latency_ms, lim.sla_latency_ms, "latency", "sla_latency_ms"),
            (s.jitter_ms, lim.sla_jitter_ms, "jitter", "sla_jitter_ms"),
            (s.loss_pct, lim.sla_loss_pct, "loss", "sla_loss_pct"),
        ):
            if value is not None and not lo <= value <= hi:
                loc, field = where(j, ("spec", "target"))
                message = _whose(
                    renderer,
                    {limit},
                    f"SLA {label} thresholds outside {lo:g}-{hi:g}",
                    f"journey '{j}' needs an SLA {label} threshold of {value:g}",
                    f"SLA {label} threshold {value:g} for journey '{j}' is outside what {renderer.platform} "
                    f"accepts ({lo:g}-{hi:g})",
                )
                errors.append(
                    Diagnostic(loc, field, message, "adjust the target so the derived budget fits the platform's range")
                )
    return errors, tuple(notes)


def _bandwidth_limits(plan: DevicePlan, renderer: Renderer, device: Device) -> list[Diagnostic]:
    """Per-link limits: shaper range and whole-step bandwidth granularity.

    A platform that expresses guarantees in steps of ``min_bandwidth_pct`` (whole
    percent on most) must round every small guarantee up to a step; when those
    rounded guarantees leave less than one step for the default class, the plan
    cannot be expressed on this link.
    """
    lim = renderer.limits
    out: list[Diagnostic] = []
    index = {i.name: k for k, i in enumerate(device.interfaces)}
    classes = {c.name: c for c in plan.classes}
    for iface in plan.wan_interfaces:
        k = index.get(iface.name)
        if k is None or not iface.link_kbps:
            continue
        shape = iface.shape_kbps
        if shape is not None and (
            (lim.min_shape_kbps is not None and shape < lim.min_shape_kbps)
            or (lim.max_shape_kbps is not None and shape > lim.max_shape_kbps)
        ):
            accepted = f"{lim.min_shape_kbps or 0}-{lim.max_shape_kbps or 'any'} kbps"
            message = _whose(
                renderer,
                {"min_shape_kbps", "max_shape_kbps"},
                f"shaping outside {accepted}",
                f"device {plan.device} would shape {iface.name} to {shape} kbps",
                f"device {plan.device} ({renderer.platform}) cannot shape {iface.name} to {shape} kbps: "
                f"its shaper accepts {accepted}",
            )
            out.append(
                Diagnostic(
                    device.origin.at("interfaces", k, "bandwidth_kbps"),
                    device.origin.field("interfaces", k, "bandwidth_kbps"),
                    message,
                    "use a link rate inside the platform's shaping range",
                )
            )
        step = lim.min_bandwidth_pct
        if step <= 0:
            continue
        total, rounded = _rounded(plan.classes, iface.allocations, step)
        if total + step > 100.0 + 1e-9:
            journeys = sorted({j for n in rounded for j in classes[n].journeys})
            rounding = (
                f"the classes' guarantees round up to {total:g} %, leaving less than {step:g} % for the default "
                f"class (journeys: {', '.join(journeys)})"
            )
            message = _whose(
                renderer,
                {"min_bandwidth_pct"},
                f"guarantees finer than {step:g} %",
                f"on device {plan.device} {iface.name} {rounding}",
                f"on device {plan.device} ({renderer.platform}) {iface.name} expresses guarantees in steps of "
                f"{step:g} %: {rounding}",
            )
            out.append(
                Diagnostic(
                    device.origin.at("interfaces", k, "bandwidth_kbps"),
                    device.origin.field("interfaces", k, "bandwidth_kbps"),
                    message,
                    "raise bandwidth_kbps, lower the journeys' bandwidth, "
                    "or give small journeys a shared service_class",
                )
            )
    return out


@functools.lru_cache(maxsize=4096)
def _rounded(
    classes: tuple[QosClass, ...], allocations: tuple[Allocation, ...], step: float
) -> tuple[float, tuple[str, ...]]:
    """The non-default guarantees rounded up to ``step`` percent: their sum and their classes.

    Memoised: devices of one scope group share their classes and, per link rate,
    their allocations.
    """
    rated = {c.name for c in classes if not c.is_default}
    rounded = {
        a.class_name: max(step, math.ceil(a.guaranteed_pct / step - 1e-9) * step)
        for a in allocations
        if a.class_name in rated
    }
    return sum(rounded.values()), tuple(rounded)
