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
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from types import MappingProxyType
from typing import Any, ClassVar

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
from controller.model import Device, Policy
from controller.render import _sdwan as sd
from controller.render import base
from controller.render.base import Limits, Renderer
from controller.render.cisco_iosxe import if_ident

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


def _service(name: str, m: PlanMatch) -> dict[str, Any] | None:
    """A custom service for a match with a protocol; ``None`` means the predefined service ALL."""
    if m.protocol == "icmp":
        return {"name": name, "protocol": "ICMP", "ranges": None}
    if m.protocol not in ("tcp", "udp"):
        return None
    dsts = [sd.port_text(r) for r in m.destination_ports] or ["1-65535"]
    srcs = [sd.port_text(r) for r in m.source_ports]
    ranges = [f"{d}:{s}" for d in dsts for s in srcs] if srcs else dsts
    return {"name": name, "protocol": "TCP/UDP/SCTP", "ranges": (f"{m.protocol}-portrange", " ".join(ranges))}


Port = tuple[int, int] | None
RuleRow = tuple[str, int | None, Port, Port, str | None, tuple[str, ...], tuple[str, ...]]
ShapingRow = tuple[Mapping[str, Any] | None, str, str, str | None, tuple[str, ...], tuple[str, ...]]


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

    Memoised per marking rule, like :func:`_rule_rows`; the service mapping is
    shared, so callers copy it before handing it to a template.
    """
    rows: list[ShapingRow] = []
    for k, m in enumerate(rule.matches, start=1):
        svc = _service(sd.bounded(f"{PREFIX}-{rule.ident}-{k}", ADDRESS_MAX), m)
        rows.append(
            (
                MappingProxyType(svc) if svc else None,
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


def _profile(plan: DevicePlan, iface: InterfacePlan) -> dict[str, Any]:
    assert iface.link_kbps
    name, default_id, entries = _profile_entries(plan.classes, iface.allocations, iface.link_kbps, iface.name)
    return {"iface": iface, "name": name, "default_class_id": default_id, "entries": [dict(e) for e in entries]}


@functools.lru_cache(maxsize=4096)
def _profile_entries(
    classes: tuple[QosClass, ...], allocations: tuple[Allocation, ...], link_kbps: int, iface: str
) -> tuple[str, int, tuple[Mapping[str, Any], ...]]:
    """A link's shaping-profile name, default class id and entries (read-only); memoised per classes and link."""
    ids = {c.name: FIRST_CLASS_ID + k for k, c in enumerate(classes)}
    shares = dict(sd.class_shares(classes, allocations, link_kbps))
    entries = tuple(
        MappingProxyType(
            {
                "cls": c,
                "class_id": ids[c.name],
                "priority": _shaping_priority(c),
                "guaranteed": shares[c.name],
                # The strict class is capped at its guarantee, like a policed priority queue.
                "maximum": shares[c.name] if c.strict else 100,
            }
        )
        for c in classes
    )
    default = next(c for c in classes if c.is_default)
    return sd.bounded(f"{PREFIX}-Q-{if_ident(iface)}", NAME_MAX), ids[default.name], entries


@dataclass(frozen=True, slots=True)
class _JourneyPart:
    """The part of a FortiGate's config that only its journeys decide (shared by every device they reach).

    ``rules`` are (preferred then backup transports, SD-WAN rule fields but its
    id and members); ``shaping`` the journeys' shaping policies but their
    interfaces and id. Read-only: :meth:`FortiosSdwanRenderer.context` copies
    what it hands to the template.
    """

    checks: tuple[tuple[sd.Thresholds, tuple[str, ...], str | None], ...]
    rules: tuple[tuple[tuple[str, ...], Mapping[str, Any]], ...]
    services: tuple[Mapping[str, Any], ...]
    shaping: tuple[Mapping[str, Any], ...]
    addresses: tuple[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network], ...]


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

    def names(prefixes: tuple[str, ...]) -> tuple[str, ...]:
        for p in prefixes:
            addresses[address_name(p)] = p
        return tuple(address_name(p) for p in prefixes) or ("all",)

    rules = []
    for p in prefs:
        sla = checks[p.sla_class][0].name if p.sla_class else None
        tag = dscp_tag(p.dscp)
        for name, protocol, sport, dport, tos_, src, dst in _rule_rows(p):
            fields = {
                "pref": p,
                "name": name,
                "mode": "sla" if sla else "manual",
                "sla": sla,
                "protocol": protocol,
                "sport": sport,
                "dport": dport,
                "tos": tos_,
                "src": names(src),
                "dst": names(dst),
                "tag": tag,
            }
            rules.append((p.preferred + p.backup, MappingProxyType(fields)))
    ids = {c.name: FIRST_CLASS_ID + k for k, c in enumerate(classes)}
    services = []
    shaping = []
    for rule in markings:
        for svc, name, comment, tos_, src, dst in _shaping_rows(rule):
            if svc:
                services.append(svc)
            fields = {
                "name": name,
                "comment": comment,
                "src": names(src),
                "dst": names(dst),
                "service": svc["name"] if svc else "ALL",
                "tos": tos_,
                "class_id": ids[rule.class_name],
                "remark": None,
            }
            shaping.append(MappingProxyType(fields))
    return _JourneyPart(
        tuple(checks[s.name] for s in sla_classes),
        tuple(rules),
        tuple(services),
        tuple(shaping),
        tuple((n, base.network(addresses[n])) for n in sorted(addresses)),
    )


@functools.lru_cache(maxsize=1024)
def _trusted_shaping(classes: tuple[QosClass, ...]) -> tuple[Mapping[str, Any], ...]:
    """Shaping policies that queue trusted LAN traffic by its DSCP, but their interfaces and id (memoised)."""
    ids = {c.name: FIRST_CLASS_ID + k for k, c in enumerate(classes)}
    return tuple(
        MappingProxyType(
            {
                "name": sd.bounded(f"{PREFIX}-DSCP-{d}", NAME_MAX),
                "comment": f"qoectl trusted DSCP {d} to class {c.name}",
                "src": ("all",),
                "dst": ("all",),
                "service": "ALL",
                "tos": tos(d),
                "class_id": ids[c.name],
                "remark": None,
            }
        )
        for c in classes
        if not c.is_default
        for d in sorted(set(c.dscps))
    )


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
        wan = plan.wan_interfaces
        members = [{"seq": k, "iface": i} for k, i in enumerate(wan, start=1)]
        seqs: dict[str, list[int]] = {}
        for k, i in enumerate(wan, start=1):
            if i.transport:
                seqs.setdefault(i.transport, []).append(k)
        shared = _journey_part(plan.path_preferences, plan.sla_classes, plan.markings, plan.classes)
        orders: dict[tuple[str, ...], list[int]] = {}
        rules = []
        for k, (transports, fields) in enumerate(shared.rules, start=1):
            order = orders.get(transports)
            if order is None:
                order = orders[transports] = [seq for t in transports for seq in seqs.get(t, [])]
            rules.append({**fields, "id": k, "members": order})
        lan = plan.lan_interfaces
        lan_names = [i.name for i in lan] or ["any"]
        wan_names = [i.name for i in wan]
        shaping: list[dict[str, Any]] = [{**fields, "srcintf": lan_names} for fields in shared.shaping]
        ids = {c.name: FIRST_CLASS_ID + k for k, c in enumerate(plan.classes)}
        trusted = [i.name for i in lan if i.trust_dscp]
        untrusted = [i.name for i in lan if not i.trust_dscp]
        if trusted:
            shaping += [{**fields, "srcintf": trusted} for fields in _trusted_shaping(plan.classes)]
        if untrusted:
            default = next(c for c in plan.classes if c.is_default)
            shaping.append(
                {
                    "name": f"{PREFIX}-UNTRUSTED",
                    "comment": "qoectl untrusted LAN: everything else is re-marked to DSCP 0",
                    "srcintf": untrusted,
                    "src": ["all"],
                    "dst": ["all"],
                    "service": "ALL",
                    "tos": None,
                    "class_id": ids[default.name],
                    "remark": dscp_tag(0),
                }
            )
        for k, sp in enumerate(shaping, start=1):
            sp["id"] = k
            sp["dstintf"] = wan_names
        links = [i for i in wan if i.link_kbps]
        return {
            "plan": plan,
            "prefix": PREFIX,
            "addresses": [{"name": n, "net": net} for n, net in shared.addresses],
            "members": members,
            "all_seqs": list(range(1, len(wan) + 1)),
            "checks": [{"t": t, "factors": list(factors), "codec": codec} for t, factors, codec in shared.checks],
            "rules": rules,
            "traffic_classes": [{"id": ids[c.name], "name": class_label(c)} for c in plan.classes],
            "profiles": [_profile(plan, i) for i in links],
            "services": [dict(svc) for svc in shared.services],
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
