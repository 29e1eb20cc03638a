"""Cisco IOS-XE: MQC class-maps, a LAN-edge marking policy, per-WAN queuing and a hierarchical shaper.

The queuing policy follows the Cisco WAN-edge design: strict classes get
``priority level N`` with an explicit policer (so priority traffic can never
starve the rest), the other classes share what is left with ``bandwidth
remaining percent``, ``fair-queue`` and ``random-detect dscp-based`` where the
class asks for them. Sub-rate links get a parent shaper with the queuing policy
nested under ``class class-default``.

The plan's network-control class is one more DSCP class-map (CS6/CS7) with its
own ``bandwidth remaining percent`` and no WRED; the router's own routing
traffic (IOS marks it CS6) is classified into it by its DSCP. Nothing on the way
out rewrites a DSCP: the LAN marking policies are the only place one is set,
and the untrusted one bleaches what no journey class claimed (``class-default``).

Names are chosen so that no two objects of one kind can collide: journey
class-maps are ``QOECTL-J-<JOURNEY>``, service-class class-maps
``QOECTL-<CLASS>`` (or ``QOECTL-C-<CLASS>`` for a class whose name itself starts
with ``j-``, ``j6-`` or ``c-``), and interfaces that map to the same
identifier get a numeric suffix. DSCP values are written with the keywords
IOS-XE knows (``af11``-``af43``, ``cs1``-``cs7``, ``ef``, ``default``) and as
numbers otherwise (LE is ``1``), at most eight per ``match dscp`` line.
"""

from __future__ import annotations

import functools
from itertools import product
from typing import Any

from controller.plan import Allocation, DevicePlan, InterfacePlan, MarkingRule, PlanMatch, QosClass
from controller.render import base
from controller.render.base import Limits, Renderer, if_ident, percent_split
from controller.spec.types import dscp_name

PREFIX = "QOECTL"


IOS_DSCP_KEYWORDS = frozenset(
    {f"af{c}{d}" for c in range(1, 5) for d in range(1, 4)} | {f"cs{i}" for i in range(1, 8)} | {"ef", "default"}
)
MAX_DSCP_PER_MATCH = 8
MIN_POLICE_BPS = 8000  # IOS "police cir" accepts 8000 bps and up


@functools.lru_cache(maxsize=64)
def ios_dscp(value: int) -> str:
    """The DSCP as IOS-XE spells it: a keyword where one exists, else the number (LE -> 1); memoised."""
    name = dscp_name(value)
    return name if name in IOS_DSCP_KEYWORDS else str(value)


def if_idents(names: list[str]) -> dict[str, str]:
    """``if_ident`` for each interface, made unique per device (``Gi0/0.1`` and ``Gi0/0/1`` differ)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in sorted(names):
        base_id = candidate = if_ident(name)
        n = 1
        while candidate in used:
            n += 1
            candidate = f"{base_id}-{n}"
        used.add(candidate)
        out[name] = candidate
    return out


def class_map_name(class_ident: str) -> str:
    """The class-map of a service class; never equal to a journey's ``QOECTL-J-...`` class-map."""
    if class_ident.startswith(("J-", "J6-", "C-")):
        return f"{PREFIX}-C-{class_ident}"
    return f"{PREFIX}-{class_ident}"


def _v4(prefix: str | None) -> str:
    if prefix is None:
        return "any"
    net = base.network(prefix)
    if net.prefixlen == 32:
        return f"host {net.network_address}"
    return f"{net.network_address} {net.hostmask}"


def _v6(prefix: str | None) -> str:
    if prefix is None:
        return "any"
    net = base.network(prefix)
    return f"host {net.network_address}" if net.prefixlen == 128 else str(net)


def _port(r: tuple[int, int] | None) -> str:
    if r is None:
        return ""
    lo, hi = r
    return f" eq {lo}" if lo == hi else f" range {lo} {hi}"


def acl_lines(m: PlanMatch, family: str) -> list[str]:
    proto = {"any": "ip" if family == "ipv4" else "ipv6", "icmp": "icmp"}.get(m.protocol, m.protocol)
    if m.protocol == "icmp" and family == "ipv6":
        proto = "icmp"
    addr = _v4 if family == "ipv4" else _v6
    srcs: list[str | None] = list(m.source_prefixes) or [None]
    dsts: list[str | None] = list(m.destination_prefixes) or [None]
    sports: list[tuple[int, int] | None] = list(m.source_ports) or [None]
    dports: list[tuple[int, int] | None] = list(m.destination_ports) or [None]
    dscp = f" dscp {ios_dscp(m.dscp)}" if m.dscp is not None else ""
    return [
        f"permit {proto} {addr(s)}{_port(sp)} {addr(d)}{_port(dp)}{dscp}"
        for s, d, sp, dp in product(srcs, dsts, sports, dports)
    ]


@functools.lru_cache(maxsize=1024)
def _dscp_lines(dscps: tuple[int, ...]) -> tuple[str, ...]:
    """A class's ``match dscp`` values, at most eight per line (memoised per DSCP list)."""
    return tuple(
        " ".join(ios_dscp(d) for d in dscps[k : k + MAX_DSCP_PER_MATCH])
        for k in range(0, len(dscps), MAX_DSCP_PER_MATCH)
    )


Numbered = tuple[tuple[int, str], ...]  # ACL entries with their sequence numbers (10, 20, ...)


@functools.lru_cache(maxsize=4096)
def _acl(rule: MarkingRule) -> tuple[str, str, str | None, Numbered, str | None, Numbered]:
    """One journey's class-map, DSCP and ACLs: (class-map, DSCP, IPv4 ACL, its entries, IPv6 ACL, its entries).

    An ACL is None when the journey has no entry of that family. Memoised: the same on every device.
    """
    v4_lines, v6_lines = _rule_acl_lines(rule)
    return (
        f"{PREFIX}-J-{rule.ident}",
        ios_dscp(rule.dscp),
        f"{PREFIX}-J-{rule.ident}" if v4_lines else None,
        tuple((10 * k, line) for k, line in enumerate(v4_lines, start=1)),
        f"{PREFIX}-J6-{rule.ident}" if v6_lines else None,
        tuple((10 * k, line) for k, line in enumerate(v6_lines, start=1)),
    )


@functools.lru_cache(maxsize=4096)
def _rule_acl_lines(rule: MarkingRule) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The IPv4 and IPv6 ACL entries of one journey, duplicates removed.

    Memoised per marking rule: every device that carries the journey has the same
    entries, and building them (prefix formatting, the cross product) was most of
    this renderer's context time.
    """
    v4: list[str] = []
    v6: list[str] = []
    for m in rule.matches:
        if m.family in ("ipv4", "any"):
            v4 += acl_lines(m, "ipv4")
        if m.family in ("ipv6", "any"):
            v6 += acl_lines(m, "ipv6")
    return tuple(dict.fromkeys(v4)), tuple(dict.fromkeys(v6))


def _queuing(plan: DevicePlan, iface: InterfacePlan, ident: str) -> tuple[Any, ...]:
    """(interface, queuing policy, shaping policy or None, shape rate in bps, the queuing policy's classes)."""
    return (
        iface.name,
        f"{PREFIX}-Q-{ident}",
        f"{PREFIX}-SHAPE-{ident}" if iface.shape_kbps else None,
        (iface.shape_kbps or 0) * 1000,
        _queuing_rows(plan.classes, iface.allocations),
    )


# A queuing-policy class: (name, strict, priority level, police bps, bandwidth remaining percent, fair queue,
# queue limit in packets, AQM); the strict fields are None for the other classes and the other way round.
QueuingRow = tuple[str, bool, int | None, int | None, int | None, bool, int, bool]


@functools.lru_cache(maxsize=4096)
def _queuing_rows(classes: tuple[QosClass, ...], allocations: tuple[Allocation, ...]) -> tuple[QueuingRow, ...]:
    """One interface's queuing-policy classes. Memoised: same classes and link rate, same rows."""
    alloc = {a.class_name: a for a in reversed(allocations)}  # the first per class, as InterfacePlan.allocation
    strict_level = 0
    rows = []
    rest = [c for c in classes if not c.strict]
    shares = percent_split([float(alloc[c.name].guaranteed_kbps) for c in rest])
    share = dict(zip([c.name for c in rest], shares, strict=True))
    for c in classes:
        a = alloc[c.name]
        name = "class-default" if c.is_default else class_map_name(c.ident)
        level = police = remaining = None
        if c.strict:
            strict_level += 1
            level = strict_level
            police = max(MIN_POLICE_BPS, (a.police_kbps or a.guaranteed_kbps) * 1000)
        else:
            remaining = share[c.name]
        rows.append((name, c.strict, level, police, remaining, c.fair_queue, c.queue_depth, c.aqm))
    return tuple(rows)


@functools.lru_cache(maxsize=1024)
def _class_maps(classes: tuple[QosClass, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(class-map, its ``match dscp`` values) of each class but the default one (memoised per set of classes)."""
    return tuple((class_map_name(c.ident), _dscp_lines(c.dscps)) for c in classes if not c.is_default)


class CiscoIosXeRenderer(Renderer):
    platform = "cisco_iosxe"
    capabilities = frozenset(
        {
            base.MARKING,
            base.DSCP_CLASSIFY,
            base.QUEUING,
            base.STRICT_PRIORITY,
            base.SHAPING,
            base.AQM,
            base.FAIR_QUEUE,
            base.PORT_RANGES,
            base.IPV6,
        }
    )
    # ISR 4000 / ASR 1000 / Catalyst 8000: two priority levels (the device's limit); 12 queuing classes (Cisco's
    # 12-class WAN-edge model: the RFC 4594 classes, network control included) and whole-percent "bandwidth
    # remaining percent" are qoectl's choices (MQC also takes more classes and "bandwidth remaining ratio").
    limits = Limits(
        max_classes=12,
        max_strict_classes=2,
        min_bandwidth_pct=1.0,
        qoectl_limits=frozenset({"max_classes", "min_bandwidth_pct"}),
    )
    outputs = (("qos.cfg", "qos.cfg.j2"),)
    network_control = True  # a class-map on CS6/CS7 with its own "bandwidth remaining", no WRED, no policer

    def explain_tokens(self, plan: DevicePlan, journey: str) -> list[str]:
        tokens = super().explain_tokens(plan, journey)
        return tokens + [class_map_name(t) for t in tokens] + [f"{PREFIX}-J-{t}" for t in tokens]

    def context(self, plan: DevicePlan) -> dict[str, Any]:
        idents = if_idents([i.name for i in plan.interfaces])
        queuing = [_queuing(plan, i, idents[i.name]) for i in plan.wan_interfaces if i.link_kbps]
        lan = plan.lan_interfaces
        return {
            "plan": plan,
            "prefix": PREFIX,
            "acls": [_acl(rule) for rule in plan.markings],
            "classes": _class_maps(plan.classes),
            "queuing": queuing,
            "lan": [(i.name, f"{PREFIX}-MARK" if i.trust_dscp else f"{PREFIX}-MARK-UNTRUSTED") for i in lan],
            "mark_trusted": f"{PREFIX}-MARK",
            "mark_untrusted": f"{PREFIX}-MARK-UNTRUSTED",
            "need_untrusted": any(not i.trust_dscp for i in lan),
            "need_trusted": any(i.trust_dscp for i in lan),
        }


RENDERER = CiscoIosXeRenderer()
