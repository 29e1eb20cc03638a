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

SD-WAN edge: a device with two or more WAN transports (each WAN interface
giving its ``gateway``) steers each journey by its path preference. A
``prerouting`` chain marks the journey's packets (the same match expressions
as ``qoe_mark``, the first journey that claims a packet decides) with a mark of
its own in the byte qoectl owns (:mod:`controller.linux_routing`), keeping the
other bits; ``routing.batch`` / ``routing6.batch`` (``ip -4/-6 -batch``) hold a
table per transport (``default via <gateway> dev <iface> onlink``) and, per
journey, ``ip rule``s in plan order: its preferred transports' tables, then
its backups' (a table without a usable route falls through to the next rule);
a strict journey gets no backup but ``unreachable``, as Cisco SD-WAN's
``strict`` drops rather than use another path. Packets are marked one by one,
never pinned per flow with ``ct mark``: when ``qoectl loop`` moves a journey only
its rules change, and the next packet of a running flow already takes the new
path. Only packets that did not arrive on a WAN interface are marked, so
replies from the WAN follow the main table. The SLA classes are stated in
``routing.batch`` for the record; the router does not measure them:
``qoectl loop`` measures each transport with its probes and moves journeys.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from controller import linux_routing as owned
from controller.errors import Diagnostic
from controller.model import Device, Policy
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


@functools.lru_cache(maxsize=4096)
def _mark_rows(rule: MarkingRule) -> tuple[tuple[str, str, str, str], ...]:
    """(nft match and a space, or "", ``ip``/``ip6``, DSCP, journey) of every ``qoe_mark`` rule of one journey."""
    return tuple(
        (f"{match} " if match else "", "ip" if fam == "ipv4" else "ip6", dscp, rule.journey)
        for fam, match, dscp in _rule_marks(rule)
    )


@functools.lru_cache(maxsize=1024)
def _classify(classes: tuple[QosClass, ...]) -> tuple[tuple[str, str, str], ...]:
    """(DSCP set, class id, class name) of each class but the default one (memoised per set of classes)."""
    return tuple((_dscp_set(c.dscps), classid(c), c.name) for c in classes if not c.is_default)


@functools.lru_cache(maxsize=1024)
def _dscp_set(dscps: tuple[int, ...]) -> str:
    """The nft set of a class's DSCPs (memoised per DSCP list)."""
    return _set([nft_dscp(d) for d in dscps])


def _leaf(c: QosClass, fq_codel: bool) -> str:
    if fq_codel and (c.aqm or c.fair_queue) and not c.strict:
        return f"fq_codel limit {max(c.queue_depth, 64)}"
    return f"pfifo limit {c.queue_depth}"


def kbit(kbps: int) -> str:
    """A rate as tc writes it."""
    return f"{int(kbps)}kbit"


def _tree(plan: DevicePlan, iface: InterfacePlan, fq_codel: bool) -> tuple[Any, ...]:
    """(interface, rate in kbit/s, the same for tc, " via <transport>" or "", default class, quantum, classes)."""
    assert iface.link_kbps is not None
    rate = iface.shape_kbps or iface.link_kbps
    rows, default = _tree_rows(plan.classes, iface.allocations, rate, fq_codel)
    via = f" via {iface.transport}" if iface.transport else ""
    return (iface.name, rate, kbit(rate), via, default, _quantum(rate), rows)


@functools.lru_cache(maxsize=4096)
def _tree_rows(
    classes: tuple[QosClass, ...], allocations: tuple[Allocation, ...], rate: int, fq_codel: bool
) -> tuple[tuple[tuple[str, str, str, int, int, str, str], ...], str]:
    """One interface's HTB classes and default class handle. Memoised per classes and link.

    A class is (class id, rate, ceil, prio, quantum, leaf handle, leaf qdisc), rates as tc writes them.
    """
    alloc = {a.class_name: a for a in reversed(allocations)}  # the first per class, as InterfacePlan.allocation
    rows = []
    for c in classes:
        a = alloc[c.name]
        rows.append(
            (
                classid(c),
                kbit(a.guaranteed_kbps),
                kbit(min(a.max_kbps, rate)),
                _htb_prio(c),
                _quantum(a.guaranteed_kbps),
                f"{CLASS_BASE + c.queue:x}",
                _leaf(c, fq_codel),
            )
        )
    default = next(c for c in classes if c.is_default)
    return tuple(rows), f"{CLASS_BASE + default.queue:x}"


SAFE_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")  # names that reach a comment in routing.batch


def _safe(name: str, what: str) -> str:
    """``name`` if it is one config-safe word (the policy's Name type); a plan built in code gets no further."""
    if not SAFE_WORD.match(name):
        raise ValueError(f"{what} {name!r} cannot be written into a Linux config")
    return name


def transports(carried: tuple[str | None, ...]) -> list[str]:
    """The distinct transports the WAN interfaces carry, sorted by name (the order of their tables)."""
    return sorted({t for t in carried if t})


def _route(iface: InterfacePlan, table: int) -> tuple[str, str, int, str]:
    """(gateway, interface, table, family) of one transport's default route."""
    assert iface.gateway is not None and iface.transport is not None
    _safe(iface.transport, "transport")
    gateway = ipaddress.ip_address(iface.gateway)  # a plan built in code: nothing but an address reaches the file
    return (str(gateway), iface.name, table, f"ipv{gateway.version}")


# A steered journey: (journey, mark, its transports in order joined by " then ", " then unreachable (strict)"
# or "", its ip rules as (priority, "lookup <table>" or "unreachable")).
Steered = tuple[str, str, str, str, tuple[tuple[int, str], ...]]


def _journey_rules(n: int, p: PathPreference, tables: Mapping[str, int]) -> Steered:
    """Mark ``n`` of one journey and its rules: the plan's order (preferred, then backup unless strict), as given."""
    order = list(dict.fromkeys(t for t in p.preferred + (() if p.strict else p.backup) if t in tables))
    if len(order) >= owned.RULES_PER_JOURNEY:
        raise ValueError(f"journey {p.journey}: more than {owned.RULES_PER_JOURNEY - 1} transports")
    rules = [
        (owned.rule_priority(n, i), f"lookup {tables[t]}" if tables[t] else "unreachable") for i, t in enumerate(order)
    ]
    if p.strict:
        rules.append((owned.rule_priority(n, len(order)), "unreachable"))
    strict = " then unreachable (strict)" if p.strict else ""
    return (_safe(p.journey, "journey"), f"0x{owned.mark(n):x}", " then ".join(order), strict, tuple(rules))


@functools.lru_cache(maxsize=1024)
def _steered(
    prefs: tuple[PathPreference, ...], marked: tuple[str, ...], names: tuple[str, ...]
) -> tuple[tuple[Steered, ...], tuple[tuple[str, str, str], ...]]:
    """Journeys' marks and rules, and the ``qoe_path`` rules as (nft match and a space or "", mark, journey).

    ``marked``: the journeys of the plan's marking rules, in order; ``names``: the transports (their tables).
    Memoised: the same for every router with the same journeys and transports.
    """
    tables = {t: owned.table(k) for k, t in enumerate(names)}
    journeys = tuple(_journey_rules(n, p, tables) for n, p in enumerate(prefs, start=1))
    by_name = {j[0]: (j, p) for j, p in zip(journeys, prefs, strict=True)}
    order = [j for j in marked if j in by_name]
    order += [name for name in by_name if name not in order]
    marks = tuple(
        (f"{match} " if match else "", by_name[name][0][1], name)
        for name in order
        for match in _path_marks(by_name[name][1].matches)
    )
    return journeys, marks


@functools.lru_cache(maxsize=1024)
def _path_marks(matches: tuple[PlanMatch, ...]) -> tuple[str, ...]:
    """The distinct nft match expressions of one journey's classifiers (both families; memoised)."""
    return tuple(dict.fromkeys(nft_match(m, fam) for m in matches for fam in families(m)))


def _sla(s: SlaClass) -> str:
    """One SLA class as ``name latency_ms 150 jitter_ms 9.9 ...`` (one-way budgets; only those it has)."""
    values = (("latency_ms", s.latency_ms), ("jitter_ms", s.jitter_ms), ("loss_pct", s.loss_pct), ("mos", s.mos))
    return " ".join([_safe(s.name, "SLA class"), *(f"{k} {v:g}" for k, v in values if v is not None)])


def steering(plan: DevicePlan) -> dict[str, Any] | None:
    """What the SD-WAN part of the files needs, or None when the device does not steer (fewer than 2 transports).

    Tables: one per transport, by transport name; its route over the first WAN interface (by name) of that
    transport that gives a gateway. Marks: journey ``n`` is the ``n``-th path preference; its ``qoe_path``
    rules are written in the order of ``plan.markings`` (the order ``qoe_mark`` decides in).
    """
    names = transports(tuple(i.transport for i in plan.wan_interfaces))
    if len(names) < 2 or not plan.path_preferences:
        return None
    tables = {t: owned.table(k) for k, t in enumerate(names)}
    routes = []
    for t in names:
        iface = next((i for i in plan.wan_interfaces if i.transport == t and i.gateway), None)
        if iface is not None:
            routes.append(_route(iface, tables[t]))
    journeys, marks = _steered(plan.path_preferences, tuple(r.journey for r in plan.markings), tuple(names))
    return {
        "tables": [(_safe(t, "transport"), tables[t]) for t in names],
        "routes": routes,
        "families": sorted({r[3] for r in routes}),
        "journeys": journeys,
        "marks": marks,
        "wan": ", ".join(f'"{i.name}"' for i in plan.wan_interfaces),
        "slas": [_sla(s) for s in plan.sla_classes],
        "mask": f"0x{owned.MARK_MASK:08x}",
        "keep": f"0x{0xFFFFFFFF ^ owned.MARK_MASK:08x}",
        "owned": {
            "rules": f"{owned.RULE_FIRST}-{owned.RULE_LAST}",
            "tables": f"{owned.TABLE_FIRST}-{owned.TABLE_LAST}",
        },
    }


ROUTING_OUTPUTS = frozenset({"routing.batch", "routing6.batch"})


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
            base.SDWAN_SLA,  # stated in routing.batch; measured and enforced by qoectl loop (see notes())
            base.SDWAN_PATH,
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
    # The SLA thresholds are compared by qoectl loop with measured figures, not configured on the router: any value.
    limits = Limits(
        max_classes=64,
        max_strict_classes=4,
        min_bandwidth_pct=0.01,
        sla_latency_ms=(0, math.inf),
        sla_jitter_ms=(0, math.inf),
        qoectl_limits=frozenset({"max_classes", "max_strict_classes", "min_bandwidth_pct"}),
    )
    # routing.batch / routing6.batch only for a device that steers (see render_context).
    outputs = (
        ("nftables.nft", "nftables.nft.j2"),
        ("tc.batch", "tc.batch.j2"),
        ("routing.batch", "routing.batch.j2"),
        ("routing6.batch", "routing6.batch.j2"),
    )
    network_control = True  # HTB class for CS6/CS7 (and the router's own traffic, classified by its DSCP)

    def sdwan_edge(self, device: Device) -> bool:
        """A linux device steers journeys (gets SLA classes and path preferences) with two or more WAN transports."""
        return len(transports(tuple(i.transport for i in device.wan_interfaces))) >= 2

    def check(self, plan: DevicePlan, device: Device, policy: Policy) -> list[Diagnostic]:
        """Linux interface names (at most 15 characters: IFNAMSIZ 16, no '/', ':' or whitespace); on an SD-WAN
        edge a gateway on every WAN interface with a transport, and what fits the mark byte and the rule range."""
        return self._check_names(device) + self._check_steering(plan, device)

    def _check_steering(self, plan: DevicePlan, device: Device) -> list[Diagnostic]:
        names = transports(tuple(i.transport for i in device.wan_interfaces))
        if len(names) < 2:
            return []
        out = []
        for k, iface in enumerate(device.interfaces):
            if iface.role == "wan" and iface.transport and iface.gateway is None:
                out.append(
                    Diagnostic(
                        device.origin.at("interfaces", k),
                        device.origin.field("interfaces", k, "gateway"),
                        f"device {device.name} (linux) steers journeys over {len(names)} transports "
                        f"({', '.join(names)}): WAN interface {iface.name} (transport {iface.transport}) needs "
                        "its next hop to route them",
                        f"add 'gateway: <address of the {iface.transport} router on {iface.name}'s link>' to this "
                        "interface, e.g. gateway: 198.51.100.1 (IPv4) or gateway: fe80::1 (IPv6)",
                    )
                )
        too_many = [
            (f"{len(names)} WAN transports", owned.MAX_TRANSPORTS, "transports")
            if len(names) > owned.MAX_TRANSPORTS
            else None,
            (f"{len(plan.path_preferences)} steered journeys", owned.MAX_MARKS, "journeys")
            if len(plan.path_preferences) > owned.MAX_MARKS
            else None,
        ]
        for found in filter(None, too_many):
            what, limit, unit = found
            out.append(
                Diagnostic(
                    device.origin.at("platform"),
                    device.origin.field("platform"),
                    f"qoectl's linux renderer does not support more than {limit} {unit} on one SD-WAN edge yet: "
                    f"device {device.name} has {what} (one mark byte, ten rules per journey)",
                    "scope some journeys away from this device, or give it fewer WAN transports",
                )
            )
        return out

    def notes(self, plan: DevicePlan) -> tuple[str, ...]:
        notes = super().notes(plan)
        names = transports(tuple(i.transport for i in plan.wan_interfaces))
        if len(names) < 2 or not plan.path_preferences:  # as steering(): nothing steered, nothing to say
            return notes
        notes += (
            "linux SD-WAN edge: the router follows each journey's preferred transports (routing.batch); its SLA "
            "classes are measured per transport and enforced by qoectl loop from probes, not by the router",
        )
        for t in names:
            ifaces = [i.name for i in plan.wan_interfaces if i.transport == t and i.gateway]
            if len(ifaces) > 1:
                notes += (
                    f"transport {t} has {len(ifaces)} WAN interfaces ({', '.join(ifaces)}): its table routes over "
                    f"{ifaces[0]} only",
                )
        return notes

    def _check_names(self, device: Device) -> list[Diagnostic]:
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
        steer = steering(plan)
        if steer is not None:  # its path mark: the qoe_path rule and its ip rules
            tokens += [mark for name, mark, *_ in steer["journeys"] if name == journey]
        return tokens

    def context(self, plan: DevicePlan) -> dict[str, Any]:
        fq_codel = "fq_codel" in plan.features
        trees = [_tree(plan, i, fq_codel) for i in plan.wan_interfaces if i.link_kbps]
        untrusted = [i.name for i in plan.lan_interfaces if not i.trust_dscp]
        return {
            "plan": plan,
            "marks": [row for rule in plan.markings for row in _mark_rows(rule)],
            "classify": _classify(plan.classes),
            "trees": trees,
            "untrusted": untrusted,
            "steering": steering(plan),
        }

    def render_context(self, ctx: dict[str, Any]) -> dict[str, str]:
        """The nftables and tc files; the routing files only for a device that steers journeys."""
        return {
            name: self.template(tpl).render(ctx)
            for name, tpl in self.outputs
            if ctx["steering"] is not None or name not in ROUTING_OUTPUTS
        }


RENDERER = LinuxRenderer()
