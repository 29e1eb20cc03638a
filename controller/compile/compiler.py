"""Journeys + inventory -> one immutable QoS plan per device.

The compiler is pure: it never mutates the policy, and the same policy gives
the same plans (everything is sorted). Problems it can only see while
compiling (over-subscribed links, unsupported platform features) come back as
diagnostics pointing at the YAML that caused them.

A fleet is compiled with a :class:`CompileContext`, built once per compile
before any device: the facts of every journey (class, plan matches), and for
every group of devices the same journeys reach (see :mod:`.scope`) their
classes, markings, per-link allocations and SD-WAN tables. A device's plan is
then mostly lookups; the per-device work left is its own interfaces.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from controller.compile import budgets as b
from controller.compile.adjustments import NO_ADJUSTMENTS, Adjusted, marked_at_edge, steered
from controller.compile.scope import ScopeKey, Scopes
from controller.compile.scope import in_scope as in_scope  # re-exported: validate and callers use it from here
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
from controller.model.catalogue import DEFAULT_CLASS, RFC4594
from controller.plan import (
    Allocation,
    DevicePlan,
    InterfacePlan,
    MarkingRule,
    PathPreference,
    PlanMatch,
    QosClass,
    SlaClass,
)

# The plan's network-control rule (RFC 4594 4.1): where the plan owns the queues, CS6 and CS7 (routing and
# control traffic, the router's own included) get a class of their own that is never strict (so never policed
# with a journey) and has no early drop, guaranteed at least NETWORK_CONTROL_PCT of every WAN link (more when
# journeys are put in it). Cisco's WAN-edge designs reserve about 2 % for it.
NETWORK_CONTROL = "network-control"
NETWORK_CONTROL_DSCPS = (48, 56)  # CS6, CS7
NETWORK_CONTROL_PCT = 2.0

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
    """The service class of a journey (explicit, else by priority and target kind)."""
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


def _family(m: Match) -> str:
    prefixes = m.source_prefixes + m.destination_prefixes
    if not prefixes:
        return "any"
    return "ipv6" if ":" in prefixes[0] else "ipv4"


def plan_matches(j: Journey) -> tuple[PlanMatch, ...]:
    """The journey's classifiers as plan objects (built once per compile, see :class:`JourneyFacts`)."""
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


@dataclass(frozen=True, slots=True)
class LinkNeed:
    """The demand of one class on one link, with the journeys that make it up."""

    class_name: str
    kbps: float
    journeys: tuple[str, ...]


def link_needs(
    journeys: Iterable[Journey],
    classes: Mapping[str, ServiceClass],
    link_kbps: float,
    adjusted: Mapping[str, float] | None = None,
) -> list[LinkNeed]:
    """Demand per class on a link; ``adjusted``: journey -> kbps counted instead of its bandwidth (adjustments)."""
    kbps: dict[str, float] = {}
    names: dict[str, list[str]] = {}
    for j in journeys:
        name = class_name_for(j)
        own = adjusted.get(j.name) if adjusted else None
        kbps[name] = kbps.get(name, 0.0) + (j.bandwidth.kbps_on(link_kbps) if own is None else own)
        names.setdefault(name, []).append(j.name)
    return [LinkNeed(n, kbps[n], tuple(names[n])) for n in sorted(kbps) if n in classes]


def _allocations(qos_classes: tuple[QosClass, ...], needs: dict[str, float], link: int) -> tuple[Allocation, ...]:
    out = []
    used = 0
    for c in qos_classes:
        if c.is_default:
            continue
        need = needs.get(c.name, 0.0)
        if c.network_control:
            need = max(need, link * NETWORK_CONTROL_PCT / 100.0)
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


# A device's WAN transports, first interface first, each with (base delay, jitter, loss): all SD-WAN looks at.
Paths = tuple[tuple[str, tuple[float, float, float]], ...]


def _site_id(device: Device, policy: Policy) -> int | None:
    site = policy.site(device.site)
    return site.sdwan_site_id if site is not None else None


def _paths(device: Device, policy: Policy) -> Paths:
    transports: list[tuple[str, tuple[float, float, float]]] = []
    for iface in device.wan_interfaces:
        if iface.transport and iface.transport not in [t for t, _ in transports]:
            transports.append((iface.transport, _path_metrics(device, iface, policy)))
    return tuple(transports)


def _sdwan(
    paths: Paths,
    journeys: Iterable[JourneyFacts],
    budgets: Mapping[str, b.Budget],
    cost: Mapping[str, tuple[bool, int]],
    dscp: Mapping[str, int],
) -> tuple[tuple[SlaClass, ...], tuple[PathPreference, ...]]:
    slas: list[SlaClass] = []
    prefs: list[PathPreference] = []
    meta = {t: m for t, m in paths}
    names = [t for t, _ in paths]
    for facts in journeys:
        j = facts.journey
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
                matches=facts.matches,
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


# --------------------------------------------------------------------------- per-compile facts


@dataclass(frozen=True, slots=True)
class JourneyFacts:
    """What every device that a journey reaches would otherwise work out again: its class and plan matches."""

    journey: Journey
    class_name: str
    matches: tuple[PlanMatch, ...]


@dataclass(frozen=True, slots=True)
class ScopeGroup:
    """Everything a plan takes from the journeys that reach its device, shared by every such device.

    ``allocations`` holds the class allocations for each WAN link rate of the
    group's devices and ``sdwan`` the SLA classes and path preferences for each
    WAN transport set of its SD-WAN devices; a rate or set not listed is
    computed when asked (a device the context was not built from).

    ``control`` is the same group for devices whose plan owns the queues: its
    classes add the network-control class (see :data:`NETWORK_CONTROL`), so its
    queues and allocations differ; ``None`` on that variant itself.
    """

    journeys: tuple[JourneyFacts, ...]
    classes: tuple[QosClass, ...]
    markings: tuple[MarkingRule, ...]
    dscp: Mapping[str, int]
    allocations: Mapping[int, tuple[Allocation, ...]]
    sdwan: Mapping[Paths, tuple[tuple[SlaClass, ...], tuple[PathPreference, ...]]]
    control: ScopeGroup | None = None


@dataclass(frozen=True)
class CompileContext:
    """Facts of one policy that every device's compile shares, computed once before any device.

    Immutable once built; built by :meth:`build` from the policy and its budgets
    (and, to precompute SD-WAN tables, from which devices are SD-WAN edges).
    """

    policy: Policy
    budgets: Mapping[str, b.Budget]
    catalogue: Mapping[str, ServiceClass]
    order: Mapping[str, int]
    cost: Mapping[str, tuple[bool, int]]
    scopes: Scopes  # over the journeys with a budget, by name
    facts: tuple[JourneyFacts, ...]  # in the order of scopes.journeys
    groups: Mapping[ScopeKey, ScopeGroup]
    adjusted: Adjusted = NO_ADJUSTMENTS  # the per-device adjustments (shaper, bandwidth, marking)

    @classmethod
    def build(
        cls,
        policy: Policy,
        budgets: Mapping[str, b.Budget],
        sdwan: Callable[[Device], bool] | None = None,
        devices: Iterable[Device] | None = None,
    ) -> CompileContext:
        """Per-journey facts, then one :class:`ScopeGroup` per group of look-alike ``devices``.

        ``devices`` defaults to every device of the policy; ``sdwan`` says which of
        them are SD-WAN edges (their SLA and path tables are precomputed too).
        """
        fleet = tuple(policy.devices if devices is None else devices)
        journeys = sorted((j for j in policy.journeys if j.name in budgets), key=lambda j: j.name)
        facts = tuple(JourneyFacts(j, class_name_for(j), plan_matches(j)) for j in journeys)
        base = cls(
            policy=policy,
            budgets=budgets,
            catalogue={c.name: c for c in policy.classes},
            order={c.name: i for i, c in enumerate(policy.classes)},
            cost={t.name: (t.metered, t.cost) for t in policy.transports},
            scopes=Scopes.of(journeys),
            facts=facts,
            groups={},
            adjusted=Adjusted.of(policy.adjustments),
        )
        keys, reach = base.scopes.groups(fleet, base.context_of)
        links: dict[ScopeKey, set[int]] = {k: set() for k in reach}
        paths: dict[ScopeKey, set[Paths]] = {k: set() for k in reach}
        for key, device in zip(keys, fleet, strict=True):
            links[key].update(i.bandwidth_kbps for i in device.interfaces if i.role == "wan" and i.bandwidth_kbps)
            if sdwan is not None and sdwan(device):
                paths[key].add(_paths(device, policy))
        # Keys that differ but reach the same journeys share one group (and so one set of plan objects).
        by_reach: dict[tuple[int, ...], list[ScopeKey]] = {}
        for key, idx in reach.items():
            by_reach.setdefault(idx, []).append(key)
        groups: dict[ScopeKey, ScopeGroup] = {}
        for idx, same in by_reach.items():
            group = base._group(
                tuple(facts[i] for i in idx),
                {link for k in same for link in links[k]},
                {p for k in same for p in paths[k]},
            )
            groups.update((k, group) for k in same)
        return dataclasses.replace(base, groups=groups)

    def context_of(self, device: Device) -> str:
        site = self.policy.site(device.site)
        return site.context if site else "unknown"

    def group(self, device: Device) -> ScopeGroup:
        """The device's group: precomputed, or computed now for a device the context was not built from."""
        key = self.scopes.key(device, self.context_of(device))
        found = self.groups.get(key)
        if found is not None:
            return found
        journeys = tuple(self.facts[i] for i in self.scopes.reaching(device, self.context_of(device)))
        return self._group(journeys, (), ())

    def _classes(self, used: Mapping[str, list[str]], control: bool) -> tuple[QosClass, ...]:
        """The plan's classes in queue order: strict first, the default last (``control``: with network control)."""
        catalogue = dict(self.catalogue)
        order = dict(self.order)
        if control and NETWORK_CONTROL not in catalogue:
            catalogue[NETWORK_CONTROL] = next(c for c in RFC4594 if c.name == NETWORK_CONTROL)
            order[NETWORK_CONTROL] = -1
        wanted = set(used) | ({NETWORK_CONTROL} if control else set())
        names = sorted(
            (n for n in wanted if n in catalogue),
            key=lambda n: (
                n == DEFAULT_CLASS,
                not catalogue[n].strict_priority or (control and n == NETWORK_CONTROL),
                order[n],
            ),
        )
        claimed = {d for n in names if n != NETWORK_CONTROL for d in catalogue[n].dscps}
        out = []
        for i, n in enumerate(names):
            c = catalogue[n]
            nc = control and n == NETWORK_CONTROL
            dscps = c.dscps + tuple(d for d in NETWORK_CONTROL_DSCPS if nc and d not in c.dscps and d not in claimed)
            out.append(
                QosClass(
                    name=n,
                    ident=ident(n),
                    queue=i,
                    dscp=c.dscp,
                    dscps=dscps,
                    strict=c.strict_priority and not nc,
                    aqm=c.aqm and not nc,
                    fair_queue=c.fair_queue and not nc,
                    queue_depth=c.queue_depth,
                    scavenger=c.scavenger and not nc,
                    is_default=n == DEFAULT_CLASS,
                    journeys=tuple(used.get(n, ())),
                    network_control=nc,
                )
            )
        return tuple(out)

    def _group(self, journeys: tuple[JourneyFacts, ...], links: Iterable[int], paths: Iterable[Paths]) -> ScopeGroup:
        catalogue = self.catalogue
        used: dict[str, list[str]] = {}
        for f in journeys:
            used.setdefault(f.class_name, []).append(f.journey.name)
        used.setdefault(DEFAULT_CLASS, [])
        qos_classes = self._classes(used, control=False)
        cls_of = {f.journey.name: f.class_name for f in journeys}
        dscp = {
            f.journey.name: marking_dscp(f.journey, catalogue[cls_of[f.journey.name]])
            for f in journeys
            if cls_of[f.journey.name] in catalogue
        }
        markings = tuple(
            MarkingRule(
                journey=j.name,
                ident=ident(j.name),
                class_name=cls_of[j.name],
                dscp=dscp[j.name],
                matches=f.matches,
                application=j.application,
                category=j.category,
            )
            for f in journeys
            if (j := f.journey).name in dscp
        )
        links = sorted(links)
        group = ScopeGroup(journeys, qos_classes, markings, dscp, {}, {})
        sdwan = {p: self.sdwan(group, p) for p in sorted(paths)}
        control = ScopeGroup(journeys, self._classes(used, control=True), markings, dscp, {}, sdwan)
        return dataclasses.replace(
            group,
            allocations={link: self.allocations(group, link) for link in links},
            sdwan=sdwan,
            control=dataclasses.replace(control, allocations={link: self.allocations(control, link) for link in links}),
        )

    def allocations(
        self, group: ScopeGroup, link: int, adjusted: Mapping[str, float] | None = None
    ) -> tuple[Allocation, ...]:
        """The group's class allocations on a WAN link of ``link`` kbps (``adjusted``: journey -> kbps instead)."""
        found = None if adjusted else group.allocations.get(link)
        if found is not None:
            return found
        journeys = (f.journey for f in group.journeys)
        needs = {n.class_name: n.kbps for n in link_needs(journeys, self.catalogue, link, adjusted)}
        return _allocations(group.classes, needs, link)

    def sdwan(self, group: ScopeGroup, paths: Paths) -> tuple[tuple[SlaClass, ...], tuple[PathPreference, ...]]:
        """The group's SLA classes and path preferences on an SD-WAN edge with these WAN transports."""
        found = group.sdwan.get(paths)
        if found is not None:
            return found
        return _sdwan(paths, group.journeys, self.budgets, self.cost, group.dscp)


def compile_device(
    device: Device,
    policy: Policy,
    budgets: Mapping[str, b.Budget],
    sdwan: bool,
    notes: tuple[str, ...] = (),
    context: CompileContext | None = None,
    network_control: bool = False,
) -> DevicePlan:
    """One device's plan. Pass the fleet's :class:`CompileContext` when compiling many devices.

    ``network_control``: the platform's plan owns the queues, so the plan gets the network-control class
    (:data:`NETWORK_CONTROL`). Without a context, one is built for this call alone (the same plan, only
    slower per device).
    """
    ctx = context if context is not None else CompileContext.build(policy, budgets, devices=())
    group = ctx.group(device)
    if network_control:
        assert group.control is not None
        group = group.control
    adjusted = ctx.adjusted
    kbps = adjusted.bandwidth.get(device.name)
    interfaces = []
    for iface in sorted(device.interfaces, key=lambda i: i.name):
        allocations: tuple[Allocation, ...] = ()
        shape = None
        link_kbps = iface.bandwidth_kbps
        if iface.role == "wan" and iface.bandwidth_kbps:
            shaper = adjusted.shaper.get((device.name, iface.name))  # an adjustment: shaped, whatever the port
            link = shaper if shaper is not None else iface.bandwidth_kbps
            link_kbps = link
            allocations = ctx.allocations(group, link, kbps)
            if shaper is not None or (iface.port_speed_kbps and iface.port_speed_kbps > link):
                shape = link
        interfaces.append(
            InterfacePlan(
                name=iface.name,
                role=iface.role,
                link_kbps=link_kbps,
                port_kbps=iface.port_speed_kbps,
                shape_kbps=shape,
                transport=iface.transport,
                trust_dscp=iface.trust_dscp,
                allocations=allocations,
                vpn=iface.vpn,
                gateway=iface.gateway,
            )
        )
    slas: tuple[SlaClass, ...] = ()
    prefs: tuple[PathPreference, ...] = ()
    if sdwan:
        slas, prefs = ctx.sdwan(group, _paths(device, policy))
        prefs = steered(prefs, adjusted.path.get(device.name))  # the path adjustments: a journey moved
    marked = adjusted.marking.get(device.name)
    return DevicePlan(
        device=device.name,
        platform=device.platform,
        site=device.site,
        context=ctx.context_of(device),
        tags=tuple(sorted(device.tags)),
        features=tuple(sorted(device.features)),
        classes=group.classes,
        markings=marked_at_edge(group.markings, marked) if marked else group.markings,
        interfaces=tuple(interfaces),
        sla_classes=slas,
        path_preferences=prefs,
        notes=notes,
        sdwan_site_id=_site_id(device, policy) if sdwan else None,
    )
