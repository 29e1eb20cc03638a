"""Cisco Catalyst SD-WAN (Viptela OS CLI): centralized app-route policy plus the edge's localized QoS.

Two files per edge, because they go to two places:

* ``centralized-policy.cfg`` is for the SD-WAN controller (vSmart): one
  ``sla-class`` per journey SLA, data-prefix lists, and an ``app-route-policy``
  whose sequences match each journey (marked DSCP, protocol, prefixes, ports)
  and act with ``sla-class ... [strict] preferred-color ...`` and
  ``backup-sla-preferred-color``. Cisco measures SLA with BFD round trips, so
  the plan's one-way budgets are converted (see :mod:`controller.render._sdwan`).
  Journeys without an SLA target (bulk, scavenger) still prefer a transport:
  they use :data:`ANY_PATH`, the loosest SLA class there is, because an
  app-route action states a colour preference only through an SLA class (see
  :func:`_action_lines`).
* ``localized-policy.cfg`` is for the edge itself: forwarding classes mapped to
  queues (``class-map``), an ingress access list on the LAN side that marks and
  classifies each journey, one ``qos-scheduler`` per class and WAN link with
  ``bandwidth-percent``/``buffer-percent``, LLQ on queue 0 for the strict
  class, and a ``qos-map`` (plus ``shaping-rate`` on sub-rate links) per WAN
  interface.

Why queue 0 is special: on Cisco SD-WAN hardware queue 0 is the low-latency
queue, so the (single) strict class goes there and every other class takes
queues 1-7 in plan order. A plan with two strict classes, or more than seven
other classes, cannot be expressed; :meth:`CiscoSdwanRenderer.check` and the
limits report it before anything is rendered.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from controller.compile.scope import in_scope
from controller.errors import Diagnostic
from controller.model import Device, Interface, Policy
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
from controller.render import _sdwan as sd
from controller.render import base
from controller.render.base import Limits, Renderer, if_ident

PREFIX = "QOECTL"
# The SLA class of journeys without an SLA target: the loosest thresholds an SLA class takes (latency and
# jitter 1-1000 ms, loss 1-100 %, round trip; SD-WAN Manager data model), so any tunnel under 1 s round trip
# meets it and the preferred colour decides. Never a journey's name: those are all "QOECTL-SLA-<ident>".
ANY_PATH = f"{PREFIX}-ANY-PATH"
ANY_PATH_THRESHOLDS = {"latency": 1000, "jitter": 1000, "loss": 100}
TRANSPORT_VPN = 0  # Viptela: VPN 0 is always the transport (WAN) side
SERVICE_VPN = 1  # the service-side VPN of a LAN interface whose inventory entry gives none
LIST_NAME_MAX = 32  # policy list and sla-class names: [A-Za-z0-9_-]{1,32} in the SD-WAN Manager data model
OBJECT_NAME_MAX = 128  # class, qos-scheduler, qos-map and access-list names
QUEUES = 8
LLQ_QUEUE = 0

# TLOC colours a Cisco SD-WAN edge accepts (transport names in the inventory must be one of them).
COLORS = frozenset(
    {
        "default",
        "mpls",
        "metro-ethernet",
        "biz-internet",
        "public-internet",
        "lte",
        "3g",
        "red",
        "green",
        "blue",
        "gold",
        "silver",
        "bronze",
        "custom1",
        "custom2",
        "custom3",
        *(f"private{i}" for i in range(1, 7)),
    }
)


def class_name(c: QosClass) -> str:
    return sd.bounded(f"{PREFIX}-{c.ident}", OBJECT_NAME_MAX)


def sla_name(ident: str) -> str:
    return sd.bounded(f"{PREFIX}-SLA-{ident}", LIST_NAME_MAX)


def queue_numbers(plan: DevicePlan) -> dict[str, int]:
    """Queue per class: the strict class on the LLQ (0), the others on 1-7 in plan order."""
    return _queue_numbers(plan.classes)


def _queue_numbers(classes: tuple[QosClass, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    nxt = LLQ_QUEUE + 1
    for c in classes:
        if c.strict:
            out[c.name] = LLQ_QUEUE
        else:
            out[c.name] = nxt
            nxt += 1
    return out


def _prefix_lists(ident: str, index: int, m: PlanMatch) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    src = dst = None
    if m.source_prefixes:
        src = {"name": sd.bounded(f"{PREFIX}-{ident}-{index}-SRC", LIST_NAME_MAX), "prefixes": m.source_prefixes}
    if m.destination_prefixes:
        dst = {"name": sd.bounded(f"{PREFIX}-{ident}-{index}-DST", LIST_NAME_MAX), "prefixes": m.destination_prefixes}
    return src, dst


def _match_lines(m: PlanMatch, src: dict[str, Any] | None, dst: dict[str, Any] | None) -> list[str]:
    """Match conditions shared by the localized access list and the app-route policy."""
    lines = []
    if src:
        lines.append(f"source-data-prefix-list {src['name']}")
    if dst:
        lines.append(f"destination-data-prefix-list {dst['name']}")
    proto = sd.protocol_number(m.protocol)
    if proto is not None:
        lines.append(f"protocol {proto}")
    if m.source_ports:
        lines.append("source-port " + " ".join(sd.port_text(r) for r in m.source_ports))
    if m.destination_ports:
        lines.append("destination-port " + " ".join(sd.port_text(r) for r in m.destination_ports))
    return lines


def _action_lines(p: PathPreference, sla: str | None) -> list[str]:
    """App-route action: SLA with preferred colours; strict drops, otherwise pin the backup colours.

    What the actions mean: ``sla-class NAME preferred-color COLORS`` sends the traffic over the preferred
    colours while they meet NAME, else over the other tunnels that meet it, and "if no tunnels match the
    SLA, data traffic is sent through any available tunnel" (Cisco Catalyst SD-WAN Policy Groups
    Configuration Guide 26.x, "Create an application priority and SLA policy", Preferred Path);
    ``backup-sla-preferred-color COLORS``, ``strict`` and ``fallback-to-best-path`` are the actions that
    decide "how to handle the data traffic when no tunnel meets SLA" (networkacademy.io, AAR chapters
    "backup-sla-preferred-color" and "AAR key takeaways"; Cisco Policies Configuration Guide 26.x,
    "Application-Aware Routing"). So a sequence with only ``backup-sla-preferred-color`` and no SLA class
    (what qoectl rendered for journeys without a target before) states no preference the edge acts on.

    A journey without an SLA target therefore gets :data:`ANY_PATH`, the loosest thresholds an SLA class
    takes, with its preferred colour: it rides the preferred transport while that is up and any other
    tunnel when it is down, as FortiOS's manual-mode rule does with the same transports. The backup colour
    is the preferred one again, so even when no tunnel meets the loosest class (over 1 s round trip) the
    preference holds. When the preferred transport is down, FortiOS takes the next member in order while
    this spreads the journey over all other tunnels; an ordered fallback would need a preferred-color-group
    list, which qoectl does not render.
    """
    preferred = " ".join(p.preferred)
    if sla is None:
        if not preferred:
            return []
        return [f"sla-class {ANY_PATH} preferred-color {preferred}", f"backup-sla-preferred-color {preferred}"]
    first = f"sla-class {sla}" + (" strict" if p.strict else "")
    lines = [first + (f" preferred-color {preferred}" if preferred else "")]
    if not p.strict and p.backup:
        lines.append("backup-sla-preferred-color " + " ".join(p.backup))
    return lines


PrefixLists = tuple[Mapping[str, Any], ...]


def _lists(ident: str, index: int, m: PlanMatch) -> tuple[PrefixLists, list[str]]:
    """The read-only prefix lists of one match and its match conditions."""
    src, dst = _prefix_lists(ident, index, m)
    lists = tuple(MappingProxyType(lst) for lst in (src, dst) if lst)
    return lists, _match_lines(m, src, dst)


@functools.lru_cache(maxsize=4096)
def _mark_rows(rule: MarkingRule) -> tuple[tuple[PrefixLists, tuple[str, ...]], ...]:
    """Per match of one journey: its prefix lists and the localized access-list match lines.

    Memoised per marking rule: they are the same on every edge that carries the
    journey (callers copy the read-only lists).
    """
    rows = []
    for i, m in enumerate(rule.matches, start=1):
        lists, lines = _lists(rule.ident, i, m)
        if m.dscp is not None:
            lines.append(f"dscp {m.dscp}")
        rows.append((lists, tuple(lines or ["source-ip 0.0.0.0/0"])))
    return tuple(rows)


@functools.lru_cache(maxsize=4096)
def _route_rows(p: PathPreference, sla: str | None) -> tuple[tuple[PrefixLists, tuple[str, ...], tuple[str, ...]], ...]:
    """Per match of one journey: its prefix lists, app-route match lines and actions (memoised, like marks)."""
    action = tuple(_action_lines(p, sla))
    rows = []
    for i, m in enumerate(p.matches, start=1):
        lists, lines = _lists(p.ident, i, m)
        rows.append((lists, (f"dscp {p.dscp}", *lines), action))
    return tuple(rows)


@functools.lru_cache(maxsize=4096)
def _sla_thresholds(s: SlaClass) -> sd.Thresholds:
    """One SLA class in round-trip whole numbers (memoised: the same journeys on every edge)."""
    return sd.thresholds(s, sla_name(s.ident), min_latency=1, min_jitter=1, min_loss=1, with_mos=False)


class QosMap(NamedTuple):
    """A WAN interface's qos-map; ``schedulers`` are (name, class, bandwidth %, buffer %, scheduling, drops)."""

    iface: str
    shape_kbps: int | None
    map: str
    schedulers: tuple[tuple[str, str, int, int, str, str], ...]


@functools.lru_cache(maxsize=4096)
def _qos_map(
    classes: tuple[QosClass, ...], allocations: tuple[Allocation, ...], link_kbps: int, iface: str, shape: int | None
) -> QosMap:
    """One WAN interface's qos-map (memoised per classes and link: many edges have the same links)."""
    ident = if_ident(iface)
    queues = _queue_numbers(classes)
    shares = dict(sd.class_shares(classes, allocations, link_kbps))
    rows = []
    for c in sorted(classes, key=lambda c: queues[c.name]):
        share = shares[c.name]
        rows.append(
            (
                sd.bounded(f"{PREFIX}-{ident}-Q{queues[c.name]}", OBJECT_NAME_MAX),
                class_name(c),
                share,
                share,
                "llq" if c.strict else "wrr",
                # RED on the LLQ is not allowed, and a priority queue should stay short anyway.
                "red-drop" if c.aqm and not c.strict else "tail-drop",
            )
        )
    return QosMap(iface, shape, sd.bounded(f"{PREFIX}-QOS-{ident}", OBJECT_NAME_MAX), tuple(rows))


class SlaRow(NamedTuple):
    """An SLA class as the template writes it (``None``: no such line)."""

    name: str
    journeys: str  # space-separated, for the comment
    budget: str
    mos: float | None
    notes: tuple[str, ...]
    latency: int | None
    jitter: int | None
    loss: int | None


@functools.lru_cache(maxsize=4096)
def _sla_row(s: SlaClass) -> SlaRow:
    t = _sla_thresholds(s)
    return SlaRow(t.name, " ".join(s.journeys), t.budget, s.mos, t.notes, t.latency_ms, t.jitter_ms, t.loss_pct)


@dataclass(frozen=True, slots=True)
class _JourneyPart:
    """What only an edge's journeys decide: its marks, app-route sequences, prefix lists and SLA classes.

    The same for every edge the same journeys reach, so it is memoised
    (:func:`_journey_part`); immutable, so contexts share it. Sequence numbers
    are in steps of 10, marks first, then (trusted LANs) the DSCP rows.
    """

    marks: tuple[tuple[int, str, tuple[str, ...], int, str], ...]  # (sequence, journey, match lines, DSCP, class)
    routes: tuple[tuple[int, str, str, str, tuple[str, ...], tuple[str, ...]], ...]  # see _journey_part
    prefix_lists: tuple[tuple[str, tuple[str, ...]], ...]  # (name, prefixes)
    by_dscp: tuple[tuple[int, int, str], ...]  # (sequence, DSCP, class)
    slas: tuple[SlaRow, ...]
    any_path: str  # the journeys that use ANY_PATH (no SLA target, a preferred transport), space-separated


@functools.lru_cache(maxsize=1024)
def _journey_part(
    markings: tuple[MarkingRule, ...],
    prefs: tuple[PathPreference, ...],
    sla_classes: tuple[SlaClass, ...],
    classes: tuple[QosClass, ...],
) -> _JourneyPart:
    names = {c.name: class_name(c) for c in classes}
    prefix_lists: dict[str, tuple[str, ...]] = {}
    marks: list[tuple[int, str, tuple[str, ...], int, str]] = []
    for rule in markings:
        for lists, lines in _mark_rows(rule):
            for lst in lists:
                prefix_lists[lst["name"]] = tuple(lst["prefixes"])
            marks.append((10 * (len(marks) + 1), rule.journey, lines, rule.dscp, names[rule.class_name]))
    dscps = [(d, names[c.name]) for c in classes if not c.is_default for d in sorted(set(c.dscps))]
    by_dscp = tuple((10 * (len(marks) + k), d, name) for k, (d, name) in enumerate(dscps, start=1))
    slas = {s.name: _sla_thresholds(s) for s in sla_classes}
    # (sequence, journey, priority, ", strict" or "", match lines, action lines)
    routes: list[tuple[int, str, str, str, tuple[str, ...], tuple[str, ...]]] = []
    for p in prefs:
        sla = slas[p.sla_class].name if p.sla_class else None
        for lists, match, action in _route_rows(p, sla):
            for lst in lists:
                prefix_lists[lst["name"]] = tuple(lst["prefixes"])
            routes.append(
                (10 * (len(routes) + 1), p.journey, p.priority, ", strict" if p.strict else "", match, action)
            )
    return _JourneyPart(
        tuple(marks),
        tuple(routes),
        tuple((n, prefix_lists[n]) for n in sorted(prefix_lists)),
        by_dscp,
        tuple(_sla_row(s) for s in sla_classes),
        " ".join(p.journey for p in prefs if p.sla_class is None and p.preferred),
    )


class CiscoSdwanRenderer(Renderer):
    platform = "cisco_sdwan"
    capabilities = frozenset(
        {
            base.MARKING,
            base.DSCP_CLASSIFY,
            base.QUEUING,
            base.STRICT_PRIORITY,
            base.SHAPING,
            base.AQM,
            base.PORT_RANGES,
            base.SDWAN_SLA,
            base.SDWAN_PATH,
            base.SERVICE_VPN,
        }
    )
    degradable: ClassVar[Mapping[str, str]] = {
        base.FAIR_QUEUE: "SD-WAN queues are weighted round robin, one FIFO per class; no flow fairness in a class",
    }
    # Cisco documents these; qoectl does not render them yet (the messages say so, not "the edge cannot").
    not_rendered_yet: ClassVar[Mapping[str, str]] = {
        base.IPV6: "application-aware routing for IPv6 from Cisco IOS XE Catalyst SD-WAN 17.9.1a / Cisco vManage "
        "20.9.1, Policies Configuration Guide, Application-Aware Routing",
    }
    # 8 queues, queue 0 is the only low-latency queue; whole-percent bandwidth. SLA ranges are the
    # controller's round-trip ranges (latency and jitter 1-1000 ms, loss 0-100 %) expressed one way,
    # because the plan (and this check) speak one-way budgets: round trip = 2 x one way.
    limits = Limits(
        max_classes=QUEUES,
        max_strict_classes=1,
        min_bandwidth_pct=1.0,
        sla_latency_ms=(0.5, 500.0),
        sla_jitter_ms=(0.5, 500.0),
        sla_loss_pct=(0.0, 100.0),
    )
    outputs = (
        ("centralized-policy.cfg", "centralized-policy.cfg.j2"),
        ("localized-policy.cfg", "localized-policy.cfg.j2"),
    )

    def check(self, plan: DevicePlan, device: Device, policy: Policy) -> list[Diagnostic]:
        """What the generic limits cannot see: TLOC colour names and the queue-0-is-LLQ rule."""
        out: list[Diagnostic] = []
        for k, iface in enumerate(device.interfaces):
            if iface.role == "wan" and iface.transport and iface.transport not in COLORS:
                out.append(
                    Diagnostic(
                        device.origin.at("interfaces", k, "transport"),
                        device.origin.field("interfaces", k, "transport"),
                        f"transport '{iface.transport}' is not a Cisco SD-WAN colour, so device {device.name} "
                        "(cisco_sdwan) cannot prefer or avoid it in an app-route policy",
                        "name the transport after its TLOC colour: " + ", ".join(sorted(COLORS)),
                    )
                )
        other = [c for c in plan.classes if not c.strict]
        if len(other) > QUEUES - 1:
            out.append(
                Diagnostic(
                    device.origin.at("platform"),
                    device.origin.field("platform"),
                    f"device {device.name} needs {len(other)} non-priority queues "
                    f"({', '.join(c.name for c in other)}) but cisco_sdwan has {QUEUES - 1} "
                    "(queue 0 is reserved for low-latency queuing)",
                    "map some journeys to a shared service_class",
                )
            )
        return out + _site_conflicts(device, policy)

    def notes(self, plan: DevicePlan) -> tuple[str, ...]:
        where = (
            "centralized-policy.cfg is for the SD-WAN controller, not the edge: qoectl apply merges it with the other "
            "edges' and pushes it to the inventory's sdwan_controllers in CLI mode; with none (or mode: manager) it "
            "writes the merged file for SD-WAN Manager to its run folder (sdwan-manager/centralized-policy.cfg)",
        )
        if plan.sdwan_site_id is not None:
            return super().notes(plan) + where
        return (
            super().notes(plan)
            + where
            + (
                f"the app-route policy is not applied to a site (no apply-policy): site {plan.site} has no "
                "sdwan_site_id in the inventory; give it one, or activate the policy for the site in SD-WAN Manager",
            )
        )

    def context(self, plan: DevicePlan) -> dict[str, Any]:
        """Flat rows (tuples the templates unpack), mostly shared by every edge with the same journeys."""
        shared = _journey_part(plan.markings, plan.path_preferences, plan.sla_classes, plan.classes)
        queues = queue_numbers(plan)
        default = next(c for c in plan.classes if c.is_default)
        lan = plan.lan_interfaces
        vpns = service_vpns(plan)
        acl = {True: f"{PREFIX}-MARK", False: f"{PREFIX}-MARK-UNTRUSTED"}
        lan_by_vpn = [
            (v, [(i.name, acl[i.trust_dscp]) for i in lan if service_vpn(i) == v])
            for v in sorted({service_vpn(i) for i in lan})
        ]
        marks = len(shared.marks)
        return {
            "plan": plan,
            "transport_vpn": TRANSPORT_VPN,
            "service_vpns": vpns,
            "vpn_list": sd.bounded(f"{PREFIX}-VPN{'-'.join(str(v) for v in vpns)}", LIST_NAME_MAX),
            "lan_by_vpn": lan_by_vpn,
            "aar_policy": aar_policy_name(plan),
            "site_list": None if plan.sdwan_site_id is None else f"{PREFIX}-SITE-{plan.sdwan_site_id}",
            "prefix_lists": shared.prefix_lists,
            "classes": [(class_name(c), queues[c.name]) for c in plan.classes],
            "marks": shared.marks,
            "by_dscp": shared.by_dscp,
            "default_class": class_name(default),
            "slas": shared.slas,
            "any_path": {"name": ANY_PATH, "journeys": shared.any_path, **ANY_PATH_THRESHOLDS}
            if shared.any_path
            else None,
            "routes": shared.routes,
            "qos": [
                _qos_map(plan.classes, i.allocations, i.link_kbps, i.name, i.shape_kbps)
                for i in plan.wan_interfaces
                if i.link_kbps
            ],
            # Access lists by trust: (name, sequence of the catch-all row); only those some LAN interface uses.
            "acls": [
                (acl[trusted], 10 * (marks + (len(shared.by_dscp) if trusted else 0) + 1), trusted)
                for trusted in (True, False)
                if any(i.trust_dscp == trusted for i in lan)
            ],
        }

    def explain_tokens(self, plan: DevicePlan, journey: str) -> list[str]:
        tokens = super().explain_tokens(plan, journey)
        for rule in plan.markings:
            if rule.journey == journey:
                tokens.append(sla_name(rule.ident))
                tokens += [class_name(c) for c in plan.classes if c.name == rule.class_name]
                for i in range(1, len(rule.matches) + 1):
                    tokens += [sd.bounded(f"{PREFIX}-{rule.ident}-{i}-{end}", LIST_NAME_MAX) for end in ("SRC", "DST")]
        return tokens


def service_vpn(iface: InterfacePlan | Interface) -> int:
    return SERVICE_VPN if iface.vpn is None else iface.vpn


def service_vpns(plan: DevicePlan) -> list[int]:
    """The service VPNs the app-route policy covers: those of the LAN interfaces (VPN 1 without any)."""
    return sorted({service_vpn(i) for i in plan.lan_interfaces}) or [SERVICE_VPN]


def aar_policy_name(plan: DevicePlan) -> str:
    """One app-route policy per SD-WAN site when the site-id is known (a site list takes one), else per edge."""
    if plan.sdwan_site_id is not None:
        return f"{PREFIX}-AAR-SITE-{plan.sdwan_site_id}"
    return sd.bounded(f"{PREFIX}-AAR-{if_ident(plan.device)}", OBJECT_NAME_MAX)


def _routing_inputs(device: Device, policy: Policy) -> tuple[tuple[str | int, ...], ...]:
    """What a Cisco SD-WAN edge's app-route policy is made from: journeys, transports, service VPNs, features."""
    context = policy.context_of(device)
    journeys = tuple(sorted(j.name for j in policy.journeys if in_scope(j, device, context)))
    transports = tuple(sorted({i.transport for i in device.wan_interfaces if i.transport}))
    vpns = tuple(sorted({service_vpn(i) for i in device.interfaces if i.role == "lan"})) or (SERVICE_VPN,)
    return journeys, transports, vpns, tuple(sorted(device.features))


def _site_conflicts(device: Device, policy: Policy) -> list[Diagnostic]:
    """Edges of one SD-WAN site share its site list, so they must get the same app-route policy.

    Reported on the later edge (by name) of each pair that differs, pointing at the earlier one.
    """
    site = policy.site(device.site)
    if site is None or site.sdwan_site_id is None:
        return []
    peers = [d for d in policy.devices_at(device.site) if d.platform == device.platform and d.name < device.name]
    if not peers:
        return []
    mine = _routing_inputs(device, policy)
    out = []
    for peer in peers:
        theirs = _routing_inputs(peer, policy)
        if theirs != mine:
            what = [
                label
                for label, a, b in zip(
                    ("journeys", "transports", "service VPNs", "features"), mine, theirs, strict=True
                )
                if a != b
            ]
            out.append(
                Diagnostic(
                    device.origin.at("site"),
                    device.origin.field("site"),
                    f"cisco_sdwan edges {peer.name} and {device.name} share site {device.site} (SD-WAN site-id "
                    f"{site.sdwan_site_id}) but would need different app-route policies (their {' and '.join(what)} "
                    "differ); a site list takes one app-route policy",
                    "give both edges the same tags, transports, service VPNs and features, or put them at "
                    "different sites",
                    related=(peer.origin.at("site"),),
                )
            )
    return out


RENDERER = CiscoSdwanRenderer()
