"""FortiOS (FortiGate) SD-WAN: health checks with SLA targets, SD-WAN rules with DSCP marking, shaping.

One file, ``fortios.conf``, in FortiOS CLI script form:

* ``config firewall address`` objects for every journey prefix (SD-WAN rules
  and shaping policies reference addresses by name, never raw prefixes);
* ``config system sdwan``: the WAN members, one health check per journey SLA
  (``latency-threshold``/``jitter-threshold``/``packetloss-threshold``, plus
  ``mos-threshold`` for voice), and one SD-WAN rule per journey match in
  ``sla`` mode (journeys with a budget) or ``manual`` mode (journeys without),
  whose ``priority-members`` order is the plan's preferred then backup
  transports, with ``dscp-forward``/``dscp-reverse`` marking (6-bit binary
  tags, as FortiOS writes DSCP);
* the queuing part, expressed with FortiOS traffic shaping: one traffic class
  per plan class, one queuing shaping profile per WAN link (guaranteed and
  maximum bandwidth in percent of the interface ``outbandwidth``), shaping
  policies that put each journey (and, on trusted LANs, each DSCP) into its
  class, and a catch-all that re-marks untrusted LAN traffic to DSCP 0.

Why these choices: FortiOS health checks measure round trips, so one-way
budgets are converted (:mod:`controller.render._sdwan`). The strict class gets
priority ``top`` with maximum = guaranteed bandwidth, i.e. served first and
capped at its guarantee, the same treatment the other renderers give a
policed priority queue. FortiOS SD-WAN rules always fall back to a member when
none meets the SLA; a journey that asks for ``sdwan.strict`` (drop instead)
cannot be expressed, and :meth:`FortiosSdwanRenderer.check` says so.

Health checks use ``detect-mode passive`` (measured on the traffic itself):
the inventory does not name a probe server, and qoectl does not invent one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any, ClassVar, NamedTuple

from controller.errors import Diagnostic
from controller.model import Device, Policy
from controller.plan import (
    Allocation,
    DevicePlan,
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
NAME_MAX = 35  # SD-WAN rule, health-check, shaping-profile and shaping-policy names
ADDRESS_MAX = 79  # firewall address and custom service names
FIRST_CLASS_ID = 2  # traffic-class ids are 2-31
MAX_CLASSES = 30
TOS_MASK = "0xfc"  # the DSCP bits of the IPv4 TOS byte

# qoectl codec -> FortiOS mos-codec (G.729A is the reduced-complexity G.729, same bitstream).
MOS_CODEC = {"g711": "g711", "g711-plc": "g711", "g729a": "g729"}


def dscp_tag(dscp: int) -> str:
    """FortiOS writes DSCP as a 6-bit binary string: EF (46) is 101110."""
    return f"{dscp:06b}"


def tos(dscp: int) -> str:
    """TOS byte value that carries ``dscp`` (matched with mask 0xfc)."""
    return f"0x{dscp << 2:02x}"


@functools.lru_cache(maxsize=8192)
def address_name(prefix: str) -> str:
    """The firewall address object of a prefix (memoised: the same journey prefixes are on every device)."""
    return f"{PREFIX}-NET-{sd.prefix_token(prefix)}"


def class_label(c: QosClass) -> str:
    return sd.bounded(f"{PREFIX}-{c.ident}", NAME_MAX)


def _shaping_priority(c: QosClass) -> str:
    """Mirror of the other platforms' scheduling order: strict first, default and scavenger last."""
    if c.strict:
        return "top"
    if c.scavenger:
        return "low"
    return "medium" if c.is_default else "high"


def _port_pairs(m: PlanMatch) -> list[tuple[tuple[int, int] | None, tuple[int, int] | None]]:
    """SD-WAN rules take one source and one destination port range each: one rule per pair."""
    srcs: list[tuple[int, int] | None] = list(m.source_ports) or [None]
    dsts: list[tuple[int, int] | None] = list(m.destination_ports) or [None]
    return list(product(srcs, dsts))


class Service(NamedTuple):
    """A custom service: name, FortiOS protocol, and its port ranges as ``<proto>-portrange <ranges>`` (or None)."""

    name: str
    protocol: str
    ranges: str | None


def _service(name: str, m: PlanMatch) -> Service | None:
    """A custom service for a match with a protocol; ``None`` means the predefined service ALL."""
    if m.protocol == "icmp":
        return Service(name, "ICMP", None)
    if m.protocol not in ("tcp", "udp"):
        return None
    dsts = [sd.port_text(r) for r in m.destination_ports] or ["1-65535"]
    srcs = [sd.port_text(r) for r in m.source_ports]
    ranges = [f"{d}:{s}" for d in dsts for s in srcs] if srcs else dsts
    return Service(name, "TCP/UDP/SCTP", f"{m.protocol}-portrange {' '.join(ranges)}")


def quoted(names: Iterable[str]) -> str:
    """Names as FortiOS lists them in one ``set`` line: each in double quotes, separated by spaces."""
    return " ".join(f'"{n}"' for n in names)


@functools.lru_cache(maxsize=8192)
def _subnet(prefix: str) -> str:
    """``set subnet`` value of an IPv4 prefix: address and netmask (memoised, like :func:`address_name`)."""
    net = base.network(prefix)
    return f"{net.network_address} {net.netmask}"


Port = tuple[int, int] | None
RuleRow = tuple[str, int | None, Port, Port, str | None, tuple[str, ...], tuple[str, ...]]
ShapingRow = tuple[Service | None, str, str, str | None, tuple[str, ...], tuple[str, ...]]


@functools.lru_cache(maxsize=4096)
def _rule_rows(p: PathPreference) -> tuple[RuleRow, ...]:
    """SD-WAN rules of one journey: (name, protocol, source port, destination port, TOS, prefixes) per port pair.

    Memoised per path preference: they are the same on every device that carries
    the journey; only the member order and rule ids are the device's own.
    """
    rows: list[RuleRow] = []
    for m in p.matches:
        for sport, dport in _port_pairs(m):
            rows.append(
                (
                    sd.bounded(f"{PREFIX}-{p.ident}-{len(rows) + 1}", NAME_MAX),
                    sd.protocol_number(m.protocol),
                    sport,
                    dport,
                    tos(m.dscp) if m.dscp is not None else None,
                    m.source_prefixes,
                    m.destination_prefixes,
                )
            )
    return tuple(rows)


@functools.lru_cache(maxsize=4096)
def _shaping_rows(rule: MarkingRule) -> tuple[ShapingRow, ...]:
    """Custom service (read-only), shaping-policy name, comment, TOS and prefixes of each match of a journey.

    Memoised per marking rule, like :func:`_rule_rows`.
    """
    rows: list[ShapingRow] = []
    for k, m in enumerate(rule.matches, start=1):
        svc = _service(sd.bounded(f"{PREFIX}-{rule.ident}-{k}", ADDRESS_MAX), m)
        rows.append(
            (
                svc,
                sd.bounded(f"{PREFIX}-{rule.ident}-{k}", NAME_MAX),
                f"qoectl journey {rule.journey}",
                tos(m.dscp) if m.dscp is not None else None,
                m.source_prefixes,
                m.destination_prefixes,
            )
        )
    return tuple(rows)


@functools.lru_cache(maxsize=4096)
def _health_check(s: SlaClass) -> tuple[sd.Thresholds, tuple[str, ...], str | None]:
    """Thresholds, SLA factors and MOS codec of one SLA class (memoised: the same journeys on every device)."""
    t = sd.thresholds(
        s, sd.bounded(f"{PREFIX}-{s.ident}", NAME_MAX), min_latency=0, min_jitter=0, min_loss=0, with_mos=True
    )
    factors = [
        f for f, v in (("latency", t.latency_ms), ("jitter", t.jitter_ms), ("packet-loss", t.loss_pct)) if v is not None
    ] + (["mos"] if t.mos else [])
    codec = MOS_CODEC.get(s.codec or "g711", "g711") if t.mos else None
    return t, tuple(factors), codec


class HealthCheck(NamedTuple):
    """One health check as the template writes it: every value flat and formatted (``None``: no such line)."""

    name: str
    journeys: str  # the SLA class's journeys, space-separated (for the comment)
    budget: str  # the one-way budget in words (for the comment)
    mos_note: str  # ", MOS <target>" when the budget has one, else ""
    notes: tuple[str, ...]
    codec: str | None
    factors: str  # link-cost-factor values, space-separated
    latency: int | None
    jitter: int | None
    loss: int | None
    mos: str | None


@functools.lru_cache(maxsize=4096)
def _health_check_row(s: SlaClass) -> HealthCheck:
    t, factors, codec = _health_check(s)
    return HealthCheck(
        t.name,
        " ".join(s.journeys),
        t.budget,
        "" if s.mos is None else f", MOS {s.mos}",
        t.notes,
        codec,
        " ".join(factors),
        t.latency_ms,
        t.jitter_ms,
        t.loss_pct,
        t.mos,
    )


class Profile(NamedTuple):
    """A WAN link's queuing shaping profile; ``entries`` are (entry id, class id, priority, guaranteed %, maximum %)."""

    iface: str
    link_kbps: int
    name: str
    default_class_id: int
    entries: tuple[tuple[int, int, str, int, int], ...]


@functools.lru_cache(maxsize=4096)
def _profile(classes: tuple[QosClass, ...], allocations: tuple[Allocation, ...], link_kbps: int, iface: str) -> Profile:
    """A link's shaping profile (memoised per classes and link: many devices have the same links)."""
    ids = {c.name: FIRST_CLASS_ID + k for k, c in enumerate(classes)}
    shares = dict(sd.class_shares(classes, allocations, link_kbps))
    entries = tuple(
        # The strict class is capped at its guarantee, like a policed priority queue.
        (k, ids[c.name], _shaping_priority(c), shares[c.name], shares[c.name] if c.strict else 100)
        for k, c in enumerate(classes, start=1)
    )
    default = next(c for c in classes if c.is_default)
    return Profile(iface, link_kbps, sd.bounded(f"{PREFIX}-Q-{if_ident(iface)}", NAME_MAX), ids[default.name], entries)


class SdwanRule(NamedTuple):
    """One SD-WAN rule as the template writes it; names are already quoted where FortiOS lists several."""

    id: int
    members: str  # priority-members, space-separated ("" when none of the transports is on the device)
    journey: str
    name: str
    mode: str
    sla: str | None
    protocol: int | None
    sport: Port
    dport: Port
    tos: str | None
    src: str
    dst: str
    tag: str


class ShapingPolicy(NamedTuple):
    """One shaping policy as the template writes it; interface and address lists are quoted and joined."""

    id: int
    srcintf: str
    dstintf: str
    name: str
    comment: str
    srcaddr: str
    dstaddr: str
    service: str
    tos: str | None
    class_id: int
    remark: str | None


# The shared parts of the two: SdwanRule and ShapingPolicy without their first (the device's own) fields.
RuleFields = tuple[str, str, str, str | None, int | None, Port, Port, str | None, str, str, str]
ShapingFields = tuple[str, str, str, str, str, str | None, int, str | None]


@dataclass(frozen=True, slots=True)
class _JourneyPart:
    """The part of a FortiGate's config that only its journeys decide (shared by every device they reach).

    ``rules`` are (preferred then backup transports, SD-WAN rule fields but its
    id and members); ``shaping`` the journeys' shaping policies but their id
    and interfaces. All immutable, so contexts share them.
    """

    health_checks: tuple[HealthCheck, ...]
    rules: tuple[tuple[tuple[str, ...], RuleFields], ...]
    services: tuple[Service, ...]
    shaping: tuple[ShapingFields, ...]
    addresses: tuple[tuple[str, str], ...]  # (address object name, "address netmask")


@functools.lru_cache(maxsize=1024)
def _journey_part(
    prefs: tuple[PathPreference, ...],
    sla_classes: tuple[SlaClass, ...],
    markings: tuple[MarkingRule, ...],
    classes: tuple[QosClass, ...],
) -> _JourneyPart:
    """:class:`_JourneyPart` of one set of journeys; memoised, as it is the same for every device they reach."""
    checks = {s.name: _health_check(s) for s in sla_classes}
    addresses: dict[str, str] = {}

    def names(prefixes: tuple[str, ...]) -> str:
        for p in prefixes:
            addresses[address_name(p)] = p
        return quoted(address_name(p) for p in prefixes) or '"all"'

    rules: list[tuple[tuple[str, ...], RuleFields]] = []
    for p in prefs:
        sla = checks[p.sla_class][0].name if p.sla_class else None
        tag = dscp_tag(p.dscp)
        for name, protocol, sport, dport, tos_, src, dst in _rule_rows(p):
            fields: RuleFields = (
                p.journey,
                name,
                "sla" if sla else "manual",
                sla,
                protocol,
                sport,
                dport,
                tos_,
                names(src),
                names(dst),
                tag,
            )
            rules.append((p.preferred + p.backup, fields))
    ids = {c.name: FIRST_CLASS_ID + k for k, c in enumerate(classes)}
    services = []
    shaping: list[ShapingFields] = []
    for rule in markings:
        for svc, name, comment, tos_, src, dst in _shaping_rows(rule):
            if svc:
                services.append(svc)
            service = svc.name if svc else "ALL"
            shaping.append((name, comment, names(src), names(dst), service, tos_, ids[rule.class_name], None))
    return _JourneyPart(
        tuple(_health_check_row(s) for s in sla_classes),
        tuple(rules),
        tuple(services),
        tuple(shaping),
        tuple((n, _subnet(addresses[n])) for n in sorted(addresses)),
    )


@functools.lru_cache(maxsize=1024)
def _trusted_shaping(classes: tuple[QosClass, ...]) -> tuple[ShapingFields, ...]:
    """Shaping policies that queue trusted LAN traffic by its DSCP, but their interfaces and id (memoised)."""
    ids = {c.name: FIRST_CLASS_ID + k for k, c in enumerate(classes)}
    return tuple(
        (
            sd.bounded(f"{PREFIX}-DSCP-{d}", NAME_MAX),
            f"qoectl trusted DSCP {d} to class {c.name}",
            '"all"',
            '"all"',
            "ALL",
            tos(d),
            ids[c.name],
            None,
        )
        for c in classes
        if not c.is_default
        for d in sorted(set(c.dscps))
    )


@functools.lru_cache(maxsize=1024)
def _traffic_classes(classes: tuple[QosClass, ...]) -> tuple[tuple[int, str], ...]:
    """(class id, class name) of each plan class (memoised per set of classes)."""
    return tuple((FIRST_CLASS_ID + k, class_label(c)) for k, c in enumerate(classes))


class FortiosSdwanRenderer(Renderer):
    platform = "fortios_sdwan"
    capabilities = frozenset(
        {
            base.MARKING,
            base.DSCP_CLASSIFY,
            base.QUEUING,
            base.STRICT_PRIORITY,
            base.SHAPING,
            base.PORT_RANGES,
            base.SDWAN_SLA,
            base.SDWAN_PATH,
        }
    )
    degradable: ClassVar[Mapping[str, str]] = {
        base.AQM: "queuing shaping profiles are rendered with tail drop (no RED parameters)",
        base.FAIR_QUEUE: "each shaping class is one FIFO queue; no flow fairness inside a class",
    }
    # FortiOS documents these; qoectl does not render them yet (the messages say so, not "the device cannot").
    not_rendered_yet: ClassVar[Mapping[str, str]] = {
        base.IPV6: "SD-WAN rules with 'set addr-mode ipv6' and firewall address6 objects, "
        "FortiOS Administration Guide, SD-WAN rules",
        base.AQM: "shaping-profile entries take red-probability, min and max, FortiOS 6.2.1 'Weighted random "
        "early detection support' (not applied to NPU-offloaded traffic)",
    }
    # Traffic classes 2-31; whole-percent guarantees. SLA thresholds: latency and jitter 0-10000000 ms,
    # packet loss 0-100 %, all round trip, expressed one way here (round trip = 2 x one way). One strict
    # class is qoectl's bound, not FortiOS's: shaping entries offer five priorities, top to low.
    limits = Limits(
        max_classes=MAX_CLASSES,
        max_strict_classes=1,
        min_bandwidth_pct=1.0,
        sla_latency_ms=(0.0, 5_000_000.0),
        sla_jitter_ms=(0.0, 5_000_000.0),
        sla_loss_pct=(0.0, 100.0),
        qoectl_limits=frozenset({"max_strict_classes"}),
    )
    outputs = (("fortios.conf", "fortios.conf.j2"),)

    def check(self, plan: DevicePlan, device: Device, policy: Policy) -> list[Diagnostic]:
        """FortiOS rules never drop when no member meets the SLA: strict journeys cannot be expressed."""
        out: list[Diagnostic] = []
        for p in plan.path_preferences:
            j = policy.journey(p.journey)
            if not p.strict or j is None:
                continue
            out.append(
                Diagnostic(
                    j.origin.at("spec", "sdwan", "strict"),
                    j.origin.field("spec", "sdwan", "strict"),
                    f"device {device.name} (fortios_sdwan) cannot drop journey '{p.journey}' when no path meets "
                    "its SLA: FortiOS SD-WAN rules in SLA mode fall back to the members in priority order",
                    "set sdwan.strict to false for this journey, or scope it away from FortiGate devices",
                )
            )
        return out

    def context(self, plan: DevicePlan) -> dict[str, Any]:
        """Flat, formatted rows (named tuples the template unpacks): its loops look nothing up."""
        wan = plan.wan_interfaces
        seqs: dict[str, list[int]] = {}
        for k, i in enumerate(wan, start=1):
            if i.transport:
                seqs.setdefault(i.transport, []).append(k)
        shared = _journey_part(plan.path_preferences, plan.sla_classes, plan.markings, plan.classes)
        orders: dict[tuple[str, ...], str] = {}
        rules = []
        for k, (transports, fields) in enumerate(shared.rules, start=1):
            order = orders.get(transports)
            if order is None:
                order = orders[transports] = " ".join(str(seq) for t in transports for seq in seqs.get(t, []))
            rules.append(SdwanRule(k, order, *fields))
        lan = plan.lan_interfaces
        lan_names = quoted(i.name for i in lan) or '"any"'
        wan_names = quoted(i.name for i in wan)
        policies = [(lan_names, fields) for fields in shared.shaping]
        trusted = quoted(i.name for i in lan if i.trust_dscp)
        untrusted = quoted(i.name for i in lan if not i.trust_dscp)
        if trusted:
            policies += [(trusted, fields) for fields in _trusted_shaping(plan.classes)]
        if untrusted:
            default = FIRST_CLASS_ID + next(k for k, c in enumerate(plan.classes) if c.is_default)
            comment = "qoectl untrusted LAN: everything else is re-marked to DSCP 0"
            everything: ShapingFields = (
                f"{PREFIX}-UNTRUSTED",
                comment,
                '"all"',
                '"all"',
                "ALL",
                None,
                default,
                dscp_tag(0),
            )
            policies.append((untrusted, everything))
        shaping = [ShapingPolicy(k, src, wan_names, *fields) for k, (src, fields) in enumerate(policies, start=1)]
        return {
            "plan": plan,
            "addresses": shared.addresses,
            "members": [(k, i.name) for k, i in enumerate(wan, start=1)],
            "all_seqs": " ".join(str(k) for k in range(1, len(wan) + 1)),
            "health_checks": shared.health_checks,
            "rules": rules,
            "traffic_classes": _traffic_classes(plan.classes),
            "profiles": [_profile(plan.classes, i.allocations, i.link_kbps, i.name) for i in wan if i.link_kbps],
            "services": shared.services,
            "shaping": shaping,
            "tos_mask": TOS_MASK,
        }

    def explain_tokens(self, plan: DevicePlan, journey: str) -> list[str]:
        tokens = super().explain_tokens(plan, journey)
        for rule in plan.markings:
            if rule.journey == journey:
                tokens.append(sd.bounded(f"{PREFIX}-{rule.ident}", NAME_MAX))
                tokens += [class_label(c) for c in plan.classes if c.name == rule.class_name]
                # SD-WAN rules are numbered per port pair, shaping policies per match: the larger count covers both.
                count = max(len(rule.matches), sum(len(_port_pairs(m)) for m in rule.matches))
                tokens += [sd.bounded(f"{PREFIX}-{rule.ident}-{k}", NAME_MAX) for k in range(1, count + 1)]
        return tokens


RENDERER = FortiosSdwanRenderer()
