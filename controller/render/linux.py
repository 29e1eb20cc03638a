"""Linux: one nftables ruleset (DSCP marking + ``meta priority``) and a tc HTB tree per WAN interface.

The ``qoe_mark`` chain runs in the order the other platforms classify: every
journey's rule first, on the DSCP the packet arrived with (a journey may match
``ip dscp ef``), each ending with ``return`` so the first journey that claims a
packet decides its DSCP; then, for untrusted LAN interfaces only, the rule that
bleaches what no journey claimed to CS0. ``qoe_classify`` then maps DSCPs to
HTB classes, including the plan's network-control class (CS6/CS7; locally
generated routing traffic passes the same postrouting hook). DSCPs the plan
does not own are never rewritten except by that bleaching rule.

Both files apply atomically in one step each: ``nft -f nftables.nft`` replaces
the whole ``inet qoectl`` table in one transaction, and ``tc -batch tc.batch``
swaps each interface's root qdisc and builds the new tree in one process.

The tc batch first grafts two throw-away FIFO roots of different kinds and
lets the kernel pick their handles: that discards any previous tree (so a
removed journey leaves no stale class) whatever root was there before, and
never touches an ingress or clsact qdisc, which owns handle ``ffff:`` (a
fixed ``ffff:`` root handle fails with "Cannot move an existing qdisc" on
such interfaces).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from controller.compile.plan import Allocation, DevicePlan, InterfacePlan, MarkingRule, PlanMatch, QosClass
from controller.errors import Diagnostic
from controller.model import Device, Policy
from controller.render import base
from controller.render.base import Limits, Renderer
from controller.spec.types import dscp_name

HTB_ROOT = 1
LINUX_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
CLASS_BASE = 0x10
R2Q = 10


def classid(c: QosClass) -> str:
    return f"{HTB_ROOT}:{CLASS_BASE + c.queue:x}"


def _htb_prio(c: QosClass) -> int:
    if c.strict:
        return 0
    if c.scavenger:
        return 3
    return 2 if c.is_default else 1


def _quantum(kbps: int) -> int:
    return max(1514, min(200_000, kbps * 1000 // 8 // R2Q))


NFT_DSCP_NAMES = {f"cs{i}" for i in range(8)} | {f"af{c}{d}" for c in range(1, 5) for d in range(1, 4)} | {"ef"}


def nft_dscp(value: int) -> str:
    """nft knows cs*, af* and ef by name; anything else (LE is 1) is written as a number."""
    name = dscp_name(value)
    return name if name in NFT_DSCP_NAMES else str(value)


def _set(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _ports(ranges: tuple[tuple[int, int], ...]) -> str:
    return _set([str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges])


def prefix_family(prefix: str) -> str:
    return "ipv6" if ":" in prefix else "ipv4"


def _of_family(prefixes: tuple[str, ...], family: str) -> list[str]:
    return [p for p in prefixes if prefix_family(p) == family]


def nft_match(m: PlanMatch, family: str) -> str:
    """The nftables match expression for one classifier in one address family.

    Only the prefixes of ``family`` are written: an nft set holds one address
    type, so a dual-stack match becomes one rule per family (see :func:`families`).
    """
    parts: list[str] = []
    ip = "ip" if family == "ipv4" else "ip6"
    if m.protocol in ("udp", "tcp"):
        if not (m.source_ports or m.destination_ports):
            parts.append(f"meta l4proto {m.protocol}")
        if m.source_ports:
            parts.append(f"{m.protocol} sport {_ports(m.source_ports)}")
        if m.destination_ports:
            parts.append(f"{m.protocol} dport {_ports(m.destination_ports)}")
    elif m.protocol == "icmp":
        parts.append("meta l4proto " + ("icmp" if family == "ipv4" else "ipv6-icmp"))
    if sources := _of_family(m.source_prefixes, family):
        parts.append(f"{ip} saddr {_set(sources)}")
    if destinations := _of_family(m.destination_prefixes, family):
        parts.append(f"{ip} daddr {_set(destinations)}")
    if m.dscp is not None:
        parts.append(f"{ip} dscp {nft_dscp(m.dscp)}")
    return " ".join(parts)


def families(m: PlanMatch) -> tuple[str, ...]:
    """The address families a classifier can match, derived from all its prefixes.

    ``PlanMatch.family`` names the family of the first prefix only. The policy
    language rejects a match that mixes IPv4 and IPv6, but plans can also be
    built in code; deriving the family from every prefix keeps this renderer
    from ever writing ``ip saddr <IPv6 prefix>``, which nft refuses. A family is
    rendered when every prefix field that is given holds a prefix of that
    family; without prefixes both families are matched.
    """
    fields = [f for f in (m.source_prefixes, m.destination_prefixes) if f]
    return tuple(fam for fam in ("ipv4", "ipv6") if all(_of_family(f, fam) for f in fields))


@functools.lru_cache(maxsize=4096)
def _rule_marks(rule: MarkingRule) -> tuple[tuple[str, str, str], ...]:
    """(family, nft match, DSCP) of every rule one journey needs.

    Memoised per marking rule: the nft expressions are the same on every router
    that carries the journey, and building them was most of this renderer's
    context time.
    """
    dscp = nft_dscp(rule.dscp)
    return tuple((fam, nft_match(m, fam), dscp) for m in rule.matches for fam in families(m))


@functools.lru_cache(maxsize=1024)
def _dscp_set(dscps: tuple[int, ...]) -> str:
    """The nft set of a class's DSCPs (memoised per DSCP list)."""
    return _set([nft_dscp(d) for d in dscps])


def _leaf(c: QosClass, fq_codel: bool) -> str:
    if fq_codel and (c.aqm or c.fair_queue) and not c.strict:
        return f"fq_codel limit {max(c.queue_depth, 64)}"
    return f"pfifo limit {c.queue_depth}"


def _tree(plan: DevicePlan, iface: InterfacePlan, fq_codel: bool) -> dict[str, Any]:
    assert iface.link_kbps is not None
    rate = iface.shape_kbps or iface.link_kbps
    rows, default = _tree_rows(plan.classes, iface.allocations, rate, fq_codel)
    return {
        "iface": iface,
        "rate": rate,
        "quantum": _quantum(rate),
        "classes": [dict(row) for row in rows],
        "default": default,
    }


@functools.lru_cache(maxsize=4096)
def _tree_rows(
    classes: tuple[QosClass, ...], allocations: tuple[Allocation, ...], rate: int, fq_codel: bool
) -> tuple[tuple[Mapping[str, Any], ...], str]:
    """One interface's HTB classes (read-only) and default class handle. Memoised per classes and link."""
    alloc = {a.class_name: a for a in reversed(allocations)}  # the first per class, as InterfacePlan.allocation
    rows = []
    for c in classes:
        a = alloc[c.name]
        rows.append(
            MappingProxyType(
                {
                    "cls": c,
                    "classid": classid(c),
                    "handle": f"{CLASS_BASE + c.queue:x}",
                    "rate": a.guaranteed_kbps,
                    "ceil": min(a.max_kbps, rate),
                    "prio": _htb_prio(c),
                    "quantum": _quantum(a.guaranteed_kbps),
                    "leaf": _leaf(c, fq_codel),
                }
            )
        )
    default = next(c for c in classes if c.is_default)
    return tuple(rows), f"{CLASS_BASE + default.queue:x}"


class LinuxRenderer(Renderer):
    platform = "linux"
    capabilities = frozenset(
        {
            base.MARKING,
            base.DSCP_CLASSIFY,
            base.QUEUING,
            base.STRICT_PRIORITY,
            base.SHAPING,
            base.PORT_RANGES,
            base.IPV6,
        }
    )
    feature_capabilities: ClassVar[Mapping[str, frozenset[str]]] = {"fq_codel": frozenset({base.AQM, base.FAIR_QUEUE})}
    degradable: ClassVar[Mapping[str, str]] = {
        base.AQM: "no fq_codel on this kernel (declare features: [fq_codel] if it has one); "
        "short pfifo tail-drop queues are used",
        base.FAIR_QUEUE: "no fq_codel on this kernel; classes are FIFO",
    }
    # All three are qoectl's own bounds, not the kernel's: HTB takes 16-bit class minors, any number of
    # prio-0 classes and rates in kbit/s.
    limits = Limits(
        max_classes=64,
        max_strict_classes=4,
        min_bandwidth_pct=0.01,
        qoectl_limits=frozenset({"max_classes", "max_strict_classes", "min_bandwidth_pct"}),
    )
    outputs = (("nftables.nft", "nftables.nft.j2"), ("tc.batch", "tc.batch.j2"))
    network_control = True  # HTB class for CS6/CS7 (and the router's own traffic, classified by its DSCP)

    def check(self, plan: DevicePlan, device: Device, policy: Policy) -> list[Diagnostic]:
        """Linux interface names: at most 15 characters (IFNAMSIZ 16), no '/', ':' or whitespace."""
        out = []
        for k, iface in enumerate(device.interfaces):
            if not LINUX_IFNAME.match(iface.name):
                out.append(
                    Diagnostic(
                        device.origin.at("interfaces", k, "name"),
                        device.origin.field("interfaces", k, "name"),
                        f"'{iface.name}' is not a Linux interface name (device {device.name} is linux)",
                        "use the kernel's name, e.g. eth0 or wan0: at most 15 characters, no '/' or ':'",
                    )
                )
        return out

    def explain_tokens(self, plan: DevicePlan, journey: str) -> list[str]:
        tokens = super().explain_tokens(plan, journey)
        for rule in plan.markings:
            if rule.journey == journey:
                tokens += [classid(c) for c in plan.classes if c.name == rule.class_name]
        return tokens

    def context(self, plan: DevicePlan) -> dict[str, Any]:
        fq_codel = "fq_codel" in plan.features
        rules = [
            {"rule": rule, "family": fam, "match": match, "dscp": dscp}
            for rule in plan.markings
            for fam, match, dscp in _rule_marks(rule)
        ]
        classify = [
            {"cls": c, "classid": classid(c), "dscps": _dscp_set(c.dscps)} for c in plan.classes if not c.is_default
        ]
        trees = [_tree(plan, i, fq_codel) for i in plan.wan_interfaces if i.link_kbps]
        untrusted = [i.name for i in plan.lan_interfaces if not i.trust_dscp]
        return {
            "plan": plan,
            "marks": rules,
            "classify": classify,
            "trees": trees,
            "untrusted": untrusted,
        }


RENDERER = LinuxRenderer()
