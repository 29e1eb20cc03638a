"""Journeys + inventory -> one immutable QoS plan per device.

The compiler is pure: it never mutates the policy, and the same policy gives
the same plans (everything is sorted). Problems it can only see while
compiling (over-subscribed links, unsupported platform features) come back as
diagnostics pointing at the YAML that caused them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from controller.compile import budgets as b
from controller.compile.plan import (
    Allocation,
    DevicePlan,
    InterfacePlan,
    MarkingRule,
    PathPreference,
    PlanMatch,
    QosClass,
    SlaClass,
)
from controller.errors import Diagnostic
from controller.model import (
    PRIORITY_RANK,
    BulkTarget,
    Device,
    Interface,
    Journey,
    Match,
    Policy,
    ServiceClass,
    VideoTarget,
    VoiceTarget,
)
from controller.model.catalogue import DEFAULT_CLASS

KIND_CLASS = {
    "voice": "telephony",
    "video:conferencing": "multimedia-conferencing",
    "video:streaming": "multimedia-streaming",
    "interactive": "low-latency-data",
    "bulk": "high-throughput-data",
}
DROP_PRECEDENCE = {"critical": 0, "high": 0, "normal": 1, "low": 2, "scavenger": 2}


@functools.lru_cache(maxsize=8192)
def ident(name: str) -> str:
    """A config-safe identifier: names are already restricted to [A-Za-z0-9_.-] (memoised: asked per device)."""
    return name.upper().replace(".", "_")


def class_name_for(journey: Journey) -> str:
    """The service class of a journey (memoised per journey object: it is asked once per device and link)."""
    memo = _MEMO.get(id(journey))
    if memo is not None:
        return memo[1]
    return _remember(journey)[1]


def _class_name_for(journey: Journey) -> str:
    if journey.service_class:
        return journey.service_class
    t = journey.target
    if journey.priority == "scavenger" or (isinstance(t, BulkTarget) and t.scavenger):
        return "low-priority-data"
    key = f"video:{t.mode}" if isinstance(t, VideoTarget) else journey.kind
    return KIND_CLASS[key]


def marking_dscp(journey: Journey, cls: ServiceClass) -> int:
    """AF classes carry business priority as drop precedence (AFx1 for critical/high ...)."""
    if len(cls.dscps) == 3 and not cls.scavenger:
        return cls.dscps[DROP_PRECEDENCE[journey.priority]]
    return cls.dscp


def in_scope(journey: Journey, device: Device, context: str) -> bool:
    if journey.sites and device.site not in journey.sites:
        return False
    if journey.device_tags and not any(t in device.tags for t in journey.device_tags):
        return False
    return not (journey.contexts and context not in journey.contexts)


def _family(m: Match) -> str:
    prefixes = m.source_prefixes + m.destination_prefixes
    if not prefixes:
        return "any"
    return "ipv6" if ":" in prefixes[0] else "ipv4"


def _plan_matches(j: Journey) -> tuple[PlanMatch, ...]:
    """The journey's classifiers as plan objects, built once per journey and shared by every device's plan."""
    memo = _MEMO.get(id(j))
    if memo is not None:
        return memo[2]
    return _remember(j)[2]


def _build_plan_matches(j: Journey) -> tuple[PlanMatch, ...]:
    return tuple(
        PlanMatch(
            protocol=m.protocol,
            family=_family(m),  # type: ignore[arg-type]
            source_prefixes=m.source_prefixes,
            destination_prefixes=m.destination_prefixes,
            source_ports=m.source_ports,
            destination_ports=m.destination_ports,
            dscp=m.dscp,
        )
        for m in j.matches
    )


# Per-journey facts that every device would otherwise recompute: journey -> (journey, class, plan matches).
# Keyed by identity because hashing a whole frozen journey costs more than the facts; the entry keeps the
# journey alive, so its id cannot be reused while cached. Bounded: cleared when a long-running process
# has compiled many policies.
_MEMO: dict[int, tuple[Journey, str, tuple[PlanMatch, ...]]] = {}
_MEMO_LIMIT = 20_000


def _remember(j: Journey) -> tuple[Journey, str, tuple[PlanMatch, ...]]:
    if len(_MEMO) >= _MEMO_LIMIT:
        _MEMO.clear()
    entry = (j, _class_name_for(j), _build_plan_matches(j))
    _MEMO[id(j)] = entry
    return entry


@dataclass(frozen=True, slots=True)
class LinkNeed:
    """The demand of one class on one link, with the journeys that make it up."""

    class_name: str
    kbps: float
    journeys: tuple[str, ...]


def link_needs(journeys: Iterable[Journey], classes: dict[str, ServiceClass], link_kbps: float) -> list[LinkNeed]:
    kbps: dict[str, float] = {}
    names: dict[str, list[str]] = {}
    for j in journeys:
        name = class_name_for(j)
        kbps[name] = kbps.get(name, 0.0) + j.bandwidth.kbps_on(link_kbps)
        names.setdefault(name, []).append(j.name)
    return [LinkNeed(n, kbps[n], tuple(names[n])) for n in sorted(kbps) if n in classes]


def _allocations(qos_classes: tuple[QosClass, ...], needs: dict[str, float], link: int) -> tuple[Allocation, ...]:
    out = []
    used = 0
    for c in qos_classes:
        if c.is_default:
            continue
        need = needs.get(c.name, 0.0)
        kbps = max(1, math.ceil(need))
        used += kbps
        out.append(
            Allocation(
                class_name=c.name,
                guaranteed_kbps=kbps,
                guaranteed_pct=round(100.0 * kbps / link, 2),
                max_kbps=kbps if c.strict else link,
                police_kbps=kbps if c.strict else None,
            )
        )
    default = next(c for c in qos_classes if c.is_default)
    rest = max(1, link - used)
    out.append(Allocation(default.name, rest, round(100.0 * rest / link, 2), link, None))
    return tuple(out)


def _path_metrics(device: Device, iface: Interface, policy: Policy) -> tuple[float, float, float]:
    t = policy.transport(iface.transport) if iface.transport else None
    delay = iface.base_delay_ms if iface.base_delay_ms is not None else (t.base_delay_ms if t else 0.0)
    return delay, (t.jitter_ms if t else 0.0), (t.loss_pct if t else 0.0)


def _sdwan(
    device: Device, journeys: list[Journey], budgets: dict[str, b.Budget], policy: Policy, dscp: dict[str, int]
) -> tuple[tuple[SlaClass, ...], tuple[PathPreference, ...]]:
    transports: list[tuple[str, tuple[float, float, float]]] = []
    for iface in device.wan_interfaces:
        if iface.transport and iface.transport not in [t for t, _ in transports]:
            transports.append((iface.transport, _path_metrics(device, iface, policy)))
    slas: list[SlaClass] = []
    prefs: list[PathPreference] = []
    meta = {t: m for t, m in transports}
    cost = {t.name: (t.metered, t.cost) for t in policy.transports}
    names = [t for t, _ in transports]
    for j in journeys:
        bud = budgets[j.name]
        sla_name = None
        if bud.one_way_delay_ms is not None or bud.loss_pct is not None or bud.jitter_ms is not None:
            sla_name = j.name
            slas.append(
                SlaClass(
                    j.name,
                    ident(j.name),
                    bud.one_way_delay_ms,
                    bud.jitter_ms,
                    bud.loss_pct,
                    bud.mos,
                    (j.name,),
                    codec=j.target.codec if isinstance(j.target, VoiceTarget) else None,
                )
            )

        def meets(metrics: tuple[float, float, float], bud: b.Budget = bud) -> bool:
            delay, jitter, loss = metrics
            return (
                (bud.one_way_delay_ms is None or delay <= bud.one_way_delay_ms)
                and (bud.jitter_ms is None or jitter <= bud.jitter_ms)
                and (bud.loss_pct is None or loss <= bud.loss_pct)
            )

        if PRIORITY_RANK[j.priority] <= PRIORITY_RANK["high"]:
            order = sorted(names, key=lambda t: (meta[t][0], meta[t][2], t))
        else:
            order = sorted(names, key=lambda t: (cost.get(t, (False, 10)), meta[t][0], t))
        good = [t for t in order if meets(meta[t])]
        pinned = [t for t in j.preferred_transports if t in names]
        preferred = tuple(pinned) if pinned else tuple(good[:1] or order[:1])
        backup = tuple(t for t in (good if good else order) if t not in preferred)
        prefs.append(
            PathPreference(
                journey=j.name,
                ident=ident(j.name),
                application=j.application,
                category=j.category,
                dscp=dscp[j.name],
                matches=_plan_matches(j),
                sla_class=sla_name,
                preferred=preferred,
                backup=backup,
                strict=j.sdwan_strict,
                priority=j.priority,
            )
        )
    return tuple(slas), tuple(prefs)


@dataclass(frozen=True, slots=True)
class CompileResult:
    plans: tuple[DevicePlan, ...]
    budgets: dict[str, b.Budget]
    diagnostics: tuple[Diagnostic, ...]


def derive_budgets(policy: Policy) -> tuple[dict[str, b.Budget], list[Diagnostic]]:
    budgets: dict[str, b.Budget] = {}
    problems: list[Diagnostic] = []
    for j in policy.journeys:
        try:
            budgets[j.name] = b.derive(j, policy.settings)
        except b.BudgetError as exc:
            parts = tuple(exc.field.split("."))
            problems.append(Diagnostic(j.origin.at(*parts), exc.field, str(exc), exc.hint))
    return budgets, problems


def compile_device(
    device: Device,
    policy: Policy,
    budgets: dict[str, b.Budget],
    sdwan: bool,
    notes: tuple[str, ...] = (),
) -> DevicePlan:
    site = policy.site(device.site)
    context = site.context if site else "unknown"
    journeys = sorted(
        (j for j in policy.journeys if j.name in budgets and in_scope(j, device, context)), key=lambda j: j.name
    )
    catalogue = {c.name: c for c in policy.classes}
    order = {c.name: i for i, c in enumerate(policy.classes)}
    used: dict[str, list[str]] = {}
    for j in journeys:
        used.setdefault(class_name_for(j), []).append(j.name)
    used.setdefault(DEFAULT_CLASS, [])
    names = sorted(
        (n for n in used if n in catalogue),
        key=lambda n: (n == DEFAULT_CLASS, not catalogue[n].strict_priority, order[n]),
    )
    qos_classes = tuple(
        QosClass(
            name=n,
            ident=ident(n),
            queue=i,
            dscp=catalogue[n].dscp,
            dscps=catalogue[n].dscps,
            strict=catalogue[n].strict_priority,
            aqm=catalogue[n].aqm,
            fair_queue=catalogue[n].fair_queue,
            queue_depth=catalogue[n].queue_depth,
            scavenger=catalogue[n].scavenger,
            is_default=n == DEFAULT_CLASS,
            journeys=tuple(used[n]),
        )
        for i, n in enumerate(names)
    )
    cls_of = {j.name: class_name_for(j) for j in journeys}
    dscp = {j.name: marking_dscp(j, catalogue[cls_of[j.name]]) for j in journeys if cls_of[j.name] in catalogue}
    markings = tuple(
        MarkingRule(
            journey=j.name,
            ident=ident(j.name),
            class_name=cls_of[j.name],
            dscp=dscp[j.name],
            matches=_plan_matches(j),
            application=j.application,
            category=j.category,
        )
        for j in journeys
        if j.name in dscp
    )
    interfaces = []
    for iface in sorted(device.interfaces, key=lambda i: i.name):
        allocations: tuple[Allocation, ...] = ()
        shape = None
        if iface.role == "wan" and iface.bandwidth_kbps:
            link = iface.bandwidth_kbps
            needs = {n.class_name: n.kbps for n in link_needs(journeys, catalogue, link)}
            allocations = _allocations(qos_classes, needs, link)
            if iface.port_speed_kbps and iface.port_speed_kbps > link:
                shape = link
        interfaces.append(
            InterfacePlan(
                name=iface.name,
                role=iface.role,
                link_kbps=iface.bandwidth_kbps,
                port_kbps=iface.port_speed_kbps,
                shape_kbps=shape,
                transport=iface.transport,
                trust_dscp=iface.trust_dscp,
                allocations=allocations,
            )
        )
    slas: tuple[SlaClass, ...] = ()
    prefs: tuple[PathPreference, ...] = ()
    if sdwan:
        slas, prefs = _sdwan(device, journeys, budgets, policy, dscp)
    return DevicePlan(
        device=device.name,
        platform=device.platform,
        site=device.site,
        context=context,
        tags=tuple(sorted(device.tags)),
        features=tuple(sorted(device.features)),
        classes=qos_classes,
        markings=markings,
        interfaces=tuple(interfaces),
        sla_classes=slas,
        path_preferences=prefs,
        notes=notes,
    )
