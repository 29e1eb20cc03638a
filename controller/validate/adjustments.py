"""Validation of ``Adjustments`` entries: each one is held to the limits the policy states, and together with
the journeys they keep every rule a journey keeps (the priority cap, what a link can guarantee).

Every problem is reported at the entry's own line (``file:line: spec.entries[3].shaper.kbps``); the rules
the journeys break by themselves are :func:`controller.validate.checks.check_bandwidth`'s, so an entry is
blamed only for what it adds. :func:`link_loads` is also what ``qoectl loop`` plans its changes with, so
the loop never proposes what validation would refuse (docs/loop.md).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from controller import capabilities
from controller.compile import Adjusted, class_name_for, in_scope, marking_dscp, strict_class
from controller.errors import Diagnostic, Severity
from controller.model import (
    Adjustment,
    BandwidthChange,
    BulkTarget,
    Device,
    Journey,
    MarkingChange,
    PathChange,
    Policy,
    ServiceClass,
    ShaperChange,
    StrictPriorityChange,
)
from controller.model.catalogue import DEFAULT_CLASS
from controller.validate.checks import matches_overlap

Reserved = Callable[[Device], float]


def _none(_d: Device) -> float:
    return 0.0


# --------------------------------------------------------------------------- link loads


@dataclass(frozen=True, slots=True)
class LinkLoad:
    """What the journeys of one device put on one of its WAN links, with a set of adjustments."""

    device: str
    interface: str
    rate_kbps: int  # the shaper's rate with the adjustments, else bandwidth_kbps
    strict_kbps: float
    guaranteed_kbps: float
    strict_cap_kbps: float  # priority_cap_pct of the rate
    guaranteed_cap_kbps: float  # guaranteed_cap_pct - default_class_min_pct - the plan's reserve, of the rate

    @property
    def strict_over(self) -> bool:
        return self.strict_kbps > self.strict_cap_kbps + 1e-6

    @property
    def guaranteed_over(self) -> bool:
        return self.guaranteed_kbps > self.guaranteed_cap_kbps + 1e-6


def effective_class(journey: Journey, adjusted: Adjusted, classes: Sequence[ServiceClass]) -> str:
    """The journey's class with the adjustments: the strict class when it was moved there."""
    if journey.name in adjusted.strict:
        target = strict_class(classes)
        if target is not None:
            return target
    return class_name_for(journey)


def journey_kbps(journey: Journey, device: str, rate_kbps: float, adjusted: Adjusted) -> float:
    """What the journey is guaranteed on one WAN link of ``device`` (an adjustment, else its bandwidth)."""
    own = adjusted.bandwidth.get(device, {}).get(journey.name)
    return journey.bandwidth.kbps_on(rate_kbps) if own is None else own


def journeys_at(policy: Policy, device: Device) -> list[Journey]:
    ctx = policy.context_of(device)
    return [j for j in policy.journeys if in_scope(j, device, ctx)]


def link_loads(
    policy: Policy, device: Device, adjusted: Adjusted, reserved_pct: float = 0.0, journeys: Iterable[Journey] = ()
) -> list[LinkLoad]:
    """Every WAN link of ``device`` with ``adjusted`` applied, as ``check_bandwidth`` counts a link.

    ``journeys`` defaults to those that reach the device.
    """
    s = policy.settings
    catalogue = {c.name: c for c in policy.classes}
    here = list(journeys) or journeys_at(policy, device)
    out = []
    for iface in device.wan_interfaces:
        if not iface.bandwidth_kbps:
            continue
        rate = adjusted.shaper.get((device.name, iface.name), iface.bandwidth_kbps)
        strict = guaranteed = 0.0
        for j in here:
            cls = effective_class(j, adjusted, policy.classes)
            if cls not in catalogue or cls == DEFAULT_CLASS:
                continue
            kbps = journey_kbps(j, device.name, rate, adjusted)
            guaranteed += kbps
            if catalogue[cls].strict_priority:
                strict += kbps
        out.append(
            LinkLoad(
                device.name,
                iface.name,
                rate,
                strict,
                guaranteed,
                rate * s.priority_cap_pct / 100.0,
                rate * (s.guaranteed_cap_pct - s.default_class_min_pct - reserved_pct) / 100.0,
            )
        )
    return out


# --------------------------------------------------------------------------- limits of one entry


def bandwidth_range(journey: Journey, link_kbps: float) -> tuple[float, float]:
    """The guarantees an adjustment may give ``journey`` on a link: (lowest, highest), its bandwidth inside.

    Up to ``loop.max_kbps`` (none: not above its bandwidth); down to ``loop.min_kbps`` (none: not below its
    bandwidth, except a scavenger journey, which only uses idle capacity: down to 0).
    """
    stated = journey.bandwidth.kbps_on(link_kbps)
    scavenger = journey.priority == "scavenger" or (isinstance(journey.target, BulkTarget) and journey.target.scavenger)
    floor = journey.loop.min_kbps if journey.loop.min_kbps is not None else (0.0 if scavenger else stated)
    ceiling = journey.loop.max_kbps if journey.loop.max_kbps is not None else stated
    return min(stated, floor), max(stated, ceiling)


def has_arrival_dscp(journey: Journey) -> bool:
    """Does the journey match on the DSCP its packets arrive with (so unmarked traffic escapes it)?"""
    return any(m.dscp is not None for m in journey.matches)


def marking_conflicts(policy: Policy, journey: Journey, device: Device) -> list[str]:
    """Journeys at ``device`` whose traffic ``journey`` would claim, treated otherwise, once marked at the edge."""
    catalogue = {c.name: c for c in policy.classes}

    def treatment(j: Journey) -> tuple[str, int] | None:
        cls = class_name_for(j)
        return (cls, marking_dscp(j, catalogue[cls])) if cls in catalogue else None

    relaxed = [dataclasses.replace(m, dscp=None) for m in journey.matches]
    mine = treatment(journey)
    out = []
    for other in journeys_at(policy, device):
        if other.name == journey.name or treatment(other) == mine:
            continue
        if any(matches_overlap(a, b) for a in relaxed for b in other.matches):
            out.append(other.name)
    return out


def _unknown(what: str, value: str, known: Iterable[str]) -> tuple[str, str]:
    names = sorted(set(known))
    close = difflib.get_close_matches(value, names, n=1)
    shown = ", ".join(names[:20]) or "none defined"
    return f"unknown {what} '{value}'", (f"did you mean '{close[0]}'? " if close else "") + f"known: {shown}"


class _Entry:
    """Problems of one entry, each at a field of the entry."""

    def __init__(self, a: Adjustment, out: list[Diagnostic]) -> None:
        self.a = a
        self.out = out
        self.failed = False

    def error(self, part: str, message: str, hint: str, severity: Severity = "error") -> None:
        parts = (self.a.change_field, part) if part else (self.a.change_field,)
        self.out.append(Diagnostic(self.a.origin.at(*parts), self.a.origin.field(*parts), message, hint, severity))
        if severity == "error":
            self.failed = True


def _entry(a: Adjustment, policy: Policy, devices: dict[str, Device], out: list[Diagnostic]) -> bool:
    """Report what is wrong with one entry alone; True when it is sound enough to count in the link totals."""
    e = _Entry(a, out)
    c = a.change
    journey = policy.journey(c.journey) if not isinstance(c, ShaperChange) else None
    if not isinstance(c, ShaperChange) and journey is None:
        e.error("journey", *_unknown("journey", c.journey, (j.name for j in policy.journeys)))
    device = None
    if isinstance(c, ShaperChange | BandwidthChange | MarkingChange | PathChange):
        device = devices.get(c.device)
        if device is None:
            e.error("device", *_unknown("device", c.device, devices))
    if e.failed:
        return False
    if isinstance(c, ShaperChange):
        assert device is not None
        iface = next((i for i in device.interfaces if i.name == c.interface), None)
        if iface is None or iface.role != "wan":
            names = [i.name for i in device.wan_interfaces]
            message, hint = _unknown(f"WAN interface of device {device.name}", c.interface, names)
            e.error("interface", message, hint)
            return False
        low, high = iface.shaper_range or (0, 0)
        if c.kbps < low:
            if iface.min_kbps is None:
                e.error(
                    "kbps",
                    f"shaper {c.kbps} kbps on {device.name} {iface.name} is below its bandwidth_kbps "
                    f"{iface.bandwidth_kbps}, and the inventory gives no min_kbps",
                    "give the interface min_kbps (the lowest rate qoectl loop may shape it to), or raise the rate",
                )
            else:
                e.error(
                    "kbps",
                    f"shaper {c.kbps} kbps on {device.name} {iface.name} is below its min_kbps {low}",
                    f"shape it to at least {low} kbps, or lower min_kbps in the inventory",
                )
        elif c.kbps > high:
            limit = f"its max_kbps {high}" if iface.max_kbps is not None else f"its bandwidth_kbps {high}"
            e.error(
                "kbps",
                f"shaper {c.kbps} kbps on {device.name} {iface.name} is above {limit}",
                "give the interface a max_kbps (the highest rate qoectl loop may shape it to), or lower the rate",
            )
        return not e.failed
    assert journey is not None
    if isinstance(c, StrictPriorityChange):
        target = strict_class(policy.classes)
        if target is None:
            e.error("journey", "no service class has strict_priority", "define one in a ServiceClasses document")
        elif class_name_for(journey) == target:
            e.error(
                "journey",
                f"journey {journey.name} is in the strict-priority class {target} already: the entry changes nothing",
                "remove the entry",
                severity="warning",
            )
        elif not journey.loop.strict_priority:
            e.error(
                "journey",
                f"journey {journey.name} does not let the loop move it to strict priority",
                "set spec.loop.strict_priority: true in the journey (critical and high journeys), or remove this entry",
            )
        return not e.failed
    assert device is not None
    if not in_scope(journey, device, policy.context_of(device)):
        e.error(
            "device",
            f"journey {journey.name} does not reach device {device.name} (its scope)",
            "adjust a device the journey reaches, or widen the journey's scope",
        )
        return False
    if isinstance(c, BandwidthChange):
        for iface in device.wan_interfaces:
            if not iface.bandwidth_kbps:
                continue
            lowest, highest = bandwidth_range(journey, iface.bandwidth_kbps)
            stated = journey.bandwidth.kbps_on(iface.bandwidth_kbps)
            if c.kbps > highest + 1e-9:
                limit = (
                    f"its loop.max_kbps {highest:g}"
                    if journey.loop.max_kbps is not None
                    else f"its bandwidth ({stated:g} kbps on {iface.name}) and the journey gives no loop.max_kbps"
                )
                e.error(
                    "kbps",
                    f"guarantee {c.kbps:g} kbps for journey {journey.name} on {device.name} is above {limit}",
                    "raise spec.loop.max_kbps in the journey, or lower the guarantee",
                )
                break
            if c.kbps < lowest - 1e-9:
                limit = (
                    f"its loop.min_kbps {lowest:g}"
                    if journey.loop.min_kbps is not None
                    else f"its bandwidth ({stated:g} kbps on {iface.name}) and the journey gives no loop.min_kbps"
                )
                e.error(
                    "kbps",
                    f"guarantee {c.kbps:g} kbps for journey {journey.name} on {device.name} is below {limit}",
                    "lower spec.loop.min_kbps in the journey (how far it may be squeezed), or raise the guarantee",
                )
                break
        return not e.failed
    if isinstance(c, PathChange):
        _path_entry(e, c, journey, device)
        return not e.failed
    assert isinstance(c, MarkingChange)
    if not has_arrival_dscp(journey):
        e.error(
            "journey",
            f"journey {journey.name} does not match on the arriving DSCP: {device.name} marks it at the edge "
            "already, the entry changes nothing",
            "remove the entry",
            severity="warning",
        )
    conflicts = marking_conflicts(policy, journey, device)
    if conflicts:
        e.error(
            "journey",
            f"marking journey {journey.name} on {device.name} whatever DSCP it arrives with would claim traffic "
            f"of {', '.join(conflicts)}, which is treated otherwise",
            "keep the journey's dscp match (mark it at the sender), or narrow the journeys' matches",
        )
    return not e.failed


def allowed_transports(journey: Journey, device: Device) -> list[str]:
    """The transports of ``device``'s WAN interfaces the journey may be steered to, in interface order: all of
    them, or, when the journey pins ``sdwan.preferred_transports`` with ``strict: true``, only those."""
    names: list[str] = []
    for iface in device.wan_interfaces:
        if iface.transport and iface.transport not in names:
            names.append(iface.transport)
    if journey.sdwan_strict and journey.preferred_transports:
        return [t for t in names if t in journey.preferred_transports]
    return names


def steers_paths(device: Device) -> bool:
    """Does the device's platform select a path per journey (SLA classes and path preference)?"""
    declared = capabilities.declared(device.platform)
    return declared is not None and capabilities.SDWAN_SLA in declared.capabilities_for(device.features)


def _path_entry(e: _Entry, c: PathChange, journey: Journey, device: Device) -> None:
    names: list[str] = []
    for iface in device.wan_interfaces:
        if iface.transport and iface.transport not in names:
            names.append(iface.transport)
    if c.transport not in names:
        message, hint = _unknown(f"transport of device {device.name}'s WAN interfaces", c.transport, names)
        e.error("transport", message, hint)
        return
    if c.transport not in allowed_transports(journey, device):
        pinned = ", ".join(journey.preferred_transports)
        e.error(
            "transport",
            f"journey {journey.name} may not use {c.transport}: it pins sdwan.preferred_transports [{pinned}] "
            "with strict: true",
            f"steer it to one of {pinned}, or add {c.transport} to the journey's preferred_transports",
        )
        return
    if not steers_paths(device):
        e.error(
            "device",
            f"device {device.name} (platform {device.platform}) does not select a path per journey: the entry "
            "changes nothing there",
            "steer the journey on an SD-WAN edge, or remove the entry",
        )
    elif len(names) < 2:
        e.error(
            "transport",
            f"device {device.name} has one transport ({names[0]}): there is no other path to steer to",
            "remove the entry",
            severity="warning",
        )


# --------------------------------------------------------------------------- the entries together


def _affects(a: Adjustment, device: Device, reaching: set[str]) -> bool:
    c = a.change
    if isinstance(c, ShaperChange | BandwidthChange):
        return c.device == device.name
    return isinstance(c, StrictPriorityChange) and c.journey in reaching


def _capacity(policy: Policy, entries: list[Adjustment], reserved_pct: Reserved) -> tuple[list[Diagnostic], set[int]]:
    """Per device the entries touch: a link over a cap with all of them (that the journeys alone keep) is blamed
    on the entry after which, adding them in file order, it stays over (a squeeze written after a raise makes
    room for it). Returns the problems and the ids of the entries blamed."""
    out: list[Diagnostic] = []
    blamed: set[tuple[int, str]] = set()
    for device in policy.devices:
        here = journeys_at(policy, device)
        reaching = {j.name for j in here}
        mine = [a for a in entries if _affects(a, device, reaching)]
        if not mine:
            continue
        reserve = reserved_pct(device)
        steps = [link_loads(policy, device, Adjusted.of(mine[:i]), reserve, here) for i in range(len(mine) + 1)]
        for k in range(len(steps[-1])):
            for what in ("strict", "guaranteed"):
                over = [_is_over(step[k], what) for step in steps]  # after 0, 1, ... entries
                if not over[-1] or over[0]:
                    continue
                tipping = max(i for i in range(1, len(over)) if over[i] and not over[i - 1])
                a = mine[tipping - 1]
                if (id(a), what) in blamed:
                    continue
                blamed.add((id(a), what))
                out.append(_over(policy, a, steps[tipping][k], what, reserve))
    return out, {i for i, _ in blamed}


def _is_over(load: LinkLoad, what: str) -> bool:
    return load.strict_over if what == "strict" else load.guaranteed_over


def _over(policy: Policy, a: Adjustment, load: LinkLoad, what: str, reserve: float) -> Diagnostic:
    s = policy.settings
    where = f"{load.device} {load.interface}"
    parts: tuple[str, ...] = (a.change_field, "kbps") if isinstance(a.change, ShaperChange | BandwidthChange) else ()
    parts = parts or (a.change_field,)
    if what == "strict":
        pct = 100.0 * load.strict_kbps / load.rate_kbps
        message = (
            f"with this adjustment, strict-priority traffic on {where} is {load.strict_kbps:.0f} kbps = {pct:.1f} % "
            f"of {load.rate_kbps} kbps, above the {s.priority_cap_pct:g} % priority cap"
        )
        hint = "adjustments keep the priority cap too: make a smaller change, or change priority_cap_pct in Settings"
    else:
        pct = 100.0 * load.guaranteed_kbps / load.rate_kbps
        allowed = s.guaranteed_cap_pct - s.default_class_min_pct - reserve
        message = (
            f"with this adjustment, guaranteed bandwidth on {where} is {load.guaranteed_kbps:.0f} kbps = {pct:.1f} % "
            f"of {load.rate_kbps} kbps; at most {allowed:g} % can be guaranteed"
        )
        hint = "adjustments keep what a link can guarantee too: make a smaller change, or squeeze other journeys"
    return Diagnostic(a.origin.at(*parts), a.origin.field(*parts), message, hint)


def check_adjustments(
    policy: Policy, reserved_pct: Reserved = _none
) -> tuple[list[Diagnostic], tuple[Adjustment, ...]]:
    """Every entry of every Adjustments document: names, the policy's limits, duplicates, and the link caps.

    Returns the problems and the entries without an error (what the compiler applies: an entry in error
    would only add misleading follow-up errors).
    """
    if not policy.adjustments:
        return [], ()
    out: list[Diagnostic] = []
    devices: dict[str, Device] = {}
    for d in policy.devices:
        devices.setdefault(d.name, d)
    first: dict[tuple[str, ...], Adjustment] = {}
    sound: list[Adjustment] = []
    for a in policy.adjustments:
        seen = first.get(a.key)
        if seen is not None:
            out.append(
                Diagnostic(
                    a.origin.at(a.change_field),
                    a.origin.field(a.change_field),
                    f"a second adjustment of the same {a.change_field.replace('_', ' ')} ({', '.join(a.key[1:])})",
                    "keep one entry per thing changed",
                    related=(seen.origin.at(seen.change_field),),
                )
            )
            continue
        first[a.key] = a
        if _entry(a, policy, devices, out):
            sound.append(a)
    over, blamed = _capacity(policy, sound, reserved_pct)
    return out + over, tuple(a for a in sound if id(a) not in blamed)
