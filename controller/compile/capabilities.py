"""Check a device plan against what its platform can express.

Every unsupported need is reported at once, naming the journey that needs it
and why the platform cannot express it. Needs with a documented fallback
(``Renderer.degradable``) become notes on the plan instead of errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from controller.compile.plan import DevicePlan
from controller.errors import Diagnostic, Location
from controller.model import Device, Policy
from controller.render import base as cap
from controller.render.base import Renderer


@dataclass(frozen=True, slots=True)
class Need:
    capability: str
    journey: str | None  # None: needed by the device itself (e.g. a sub-rate link)
    field: tuple[str | int, ...]  # where in the journey (or device) document


def needs(plan: DevicePlan) -> Iterator[Need]:
    for rule in plan.markings:
        yield Need(cap.MARKING, rule.journey, ("spec", "traffic", "match"))
        for i, m in enumerate(rule.matches):
            if any(lo != hi for lo, hi in m.source_ports + m.destination_ports):
                yield Need(cap.PORT_RANGES, rule.journey, ("spec", "traffic", "match", i))
            if m.family == "ipv6":
                yield Need(cap.IPV6, rule.journey, ("spec", "traffic", "match", i))
    for c in plan.classes:
        for j in c.journeys:
            yield Need(cap.QUEUING, j, ("spec", "priority"))
            if c.strict:
                yield Need(cap.STRICT_PRIORITY, j, ("spec", "target"))
            if c.aqm:
                yield Need(cap.AQM, j, ("spec", "target"))
            if c.fair_queue:
                yield Need(cap.FAIR_QUEUE, j, ("spec", "target"))
    for iface in plan.interfaces:
        if iface.shape_kbps:
            yield Need(cap.SHAPING, None, ("interfaces",))
    for s in plan.sla_classes:
        for j in s.journeys:
            yield Need(cap.SDWAN_SLA, j, ("spec", "target"))
    for p in plan.path_preferences:
        yield Need(cap.SDWAN_PATH, p.journey, ("spec", "sdwan"))


def check_plan(
    plan: DevicePlan, renderer: Renderer, device: Device, policy: Policy
) -> tuple[list[Diagnostic], tuple[str, ...]]:
    caps = renderer.capabilities_for(device.features)
    errors: list[Diagnostic] = []
    notes: list[str] = []
    reported: set[tuple[str, str | None]] = set()
    degraded: list[str] = []

    def where(journey: str | None, field: tuple[str | int, ...]) -> tuple[Location, str]:
        j = policy.journey(journey) if journey else None
        if j is not None:
            return j.origin.at(*field), j.origin.field(*field)
        return device.origin.at("platform"), device.origin.field("platform")

    for need in needs(plan):
        if need.capability in caps:
            continue
        text = cap.CAPABILITY_TEXT[need.capability]
        if need.capability in renderer.degradable:
            if need.capability not in degraded:
                degraded.append(need.capability)
            continue
        if (need.capability, need.journey) in reported:
            continue
        reported.add((need.capability, need.journey))
        loc, field = where(need.journey, need.field)
        who = f"journey '{need.journey}'" if need.journey else "the device"
        errors.append(
            Diagnostic(
                loc,
                field,
                f"device {plan.device} ({renderer.platform}) cannot express {text}, needed by {who}",
                "scope the journey away from this device, or change the journey so it does not need it",
            )
        )
    for c in degraded:
        notes.append(f"{cap.CAPABILITY_TEXT[c]} is not available on {renderer.platform}: {renderer.degradable[c]}")
    lim = renderer.limits
    queued = [c for c in plan.classes]
    if len(queued) > lim.max_classes:
        loc, field = device.origin.at("platform"), device.origin.field("platform")
        errors.append(
            Diagnostic(
                loc,
                field,
                f"device {plan.device} needs {len(queued)} queues ({', '.join(c.name for c in queued)}) "
                f"but {renderer.platform} offers {lim.max_classes}",
                "map some journeys to a shared service_class",
            )
        )
    strict = plan.strict_classes
    if len(strict) > lim.max_strict_classes:
        first = strict[lim.max_strict_classes].journeys[0] if strict[lim.max_strict_classes].journeys else None
        loc, field = where(first, ("spec", "service_class"))
        errors.append(
            Diagnostic(
                loc,
                field,
                f"device {plan.device} needs {len(strict)} strict-priority classes "
                f"({', '.join(c.name for c in strict)}) but {renderer.platform} allows {lim.max_strict_classes}",
                "put the real-time journeys in one strict class",
            )
        )
    errors += _bandwidth_limits(plan, renderer, device)
    errors += renderer.check(plan, device, policy)
    for s in plan.sla_classes:
        j = s.journeys[0]
        for value, (lo, hi), label in (
            (s.latency_ms, lim.sla_latency_ms, "latency"),
            (s.jitter_ms, lim.sla_jitter_ms, "jitter"),
            (s.loss_pct, lim.sla_loss_pct, "loss"),
        ):
            if value is not None and not lo <= value <= hi:
                loc, field = where(j, ("spec", "target"))
                errors.append(
                    Diagnostic(
                        loc,
                        field,
                        f"SLA {label} threshold {value:g} for journey '{j}' is outside what {renderer.platform} "
                        f"accepts ({lo:g}-{hi:g})",
                        "adjust the target so the derived budget fits the platform's range",
                    )
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
    for iface in plan.wan_interfaces:
        k = index.get(iface.name)
        if k is None or not iface.link_kbps:
            continue
        loc = device.origin.at("interfaces", k, "bandwidth_kbps")
        field = device.origin.field("interfaces", k, "bandwidth_kbps")
        shape = iface.shape_kbps
        if shape is not None and (
            (lim.min_shape_kbps is not None and shape < lim.min_shape_kbps)
            or (lim.max_shape_kbps is not None and shape > lim.max_shape_kbps)
        ):
            out.append(
                Diagnostic(
                    loc,
                    field,
                    f"device {plan.device} ({renderer.platform}) cannot shape {iface.name} to {shape} kbps: "
                    f"its shaper accepts {lim.min_shape_kbps or 0}-{lim.max_shape_kbps or 'any'} kbps",
                    "use a link rate inside the platform's shaping range",
                )
            )
        step = lim.min_bandwidth_pct
        if step <= 0:
            continue
        classes = {c.name: c for c in plan.classes}
        rounded = {
            a.class_name: max(step, math.ceil(a.guaranteed_pct / step - 1e-9) * step)
            for a in iface.allocations
            if a.class_name in classes and not classes[a.class_name].is_default
        }
        if sum(rounded.values()) + step > 100.0 + 1e-9:
            journeys = sorted({j for n in rounded for j in classes[n].journeys})
            out.append(
                Diagnostic(
                    loc,
                    field,
                    f"on device {plan.device} ({renderer.platform}) {iface.name} expresses guarantees in steps of "
                    f"{step:g} %: the classes' guarantees round up to {sum(rounded.values()):g} %, leaving less "
                    f"than {step:g} % for the default class (journeys: {', '.join(journeys)})",
                    "raise bandwidth_kbps, lower the journeys' bandwidth, "
                    "or give small journeys a shared service_class",
                )
            )
    return out
