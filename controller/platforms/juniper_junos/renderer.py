"""Juniper Junos (MX-class routers): class-of-service in ``set`` format.

The layout follows the Junos CoS pipeline, one object per stage so that every
journey can be traced from its marking to its queue:

* a multifield classifier (``firewall family inet|inet6 filter``) on LAN
  units: one term per journey match sets ``forwarding-class``,
  ``loss-priority`` and the DSCP; untrusted LANs end with a term that puts
  everything else into the default class with DSCP 0;
* a DSCP behaviour-aggregate classifier on trusted LAN units and on WAN units,
  and a DSCP rewrite rule on WAN units (the "edge"), both built from the same
  DSCP -> (forwarding class, loss priority) table, so a classified packet
  leaves with the DSCP it was classified by. The rewrite rule has entries only
  for the journeys' classes: Junos rewrites only the (class, loss priority)
  pairs a rule lists, so the default class (every DSCP the plan does not own)
  and the network-control class keep the DSCP they arrived or were sent with,
  as on the other platforms;
* one forwarding class per plan class; the default class sits on queue 0
  because Junos puts every packet no classifier claims into the queue-0 class;
  the plan's network-control class takes CS6/CS7 and, through
  ``host-outbound-traffic forwarding-class``, the Routing Engine's own traffic
  (BGP, BFD, OSPF ...): no RED profile, not strict, a guarantee of its own;
* one scheduler map per WAN interface (shares differ per link): strict classes
  get ``priority strict-high`` with ``transmit-rate <bps> rate-limit`` at the
  plan's exact guarantee (the Junos counterpart of IOS-XE's policed LLQ; a
  whole percent of a fast link would let excess EF take several times the
  planned strict bandwidth), the others ``priority low`` and
  ``transmit-rate percent N``; AQM classes get RED drop profiles;
* ``shaping-rate`` on sub-rate WAN links; transmit-rate percentages are then
  taken of the shaped rate.

Names are derived from the plan's identifiers (already restricted to
``[A-Z0-9_-]``) and capped at Junos' 64-character name length with a stable
hash, so nothing a YAML author writes can break a ``set`` line.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from controller.plan import Allocation, DevicePlan, InterfacePlan, MarkingRule, PlanMatch, QosClass
from controller.render import base
from controller.render.base import Limits, Renderer, whole_percents
from controller.spec.types import dscp_name

PREFIX = "QOECTL"
MAX_NAME = 64  # Junos object names: 1..64 characters

# Loss priority by position of a DSCP in its class (AFx1, AFx2, AFx3, ...).
LOSS_PRIORITIES = ("low", "medium-high", "high", "medium-low")

# Code-point aliases Junos knows in filters (firewall ``dscp`` / ``traffic-class`` actions and matches).
JUNOS_DSCP_ALIASES = (
    {"ef", "be"} | {f"cs{i}" for i in range(8)} | {f"af{c}{d}" for c in range(1, 5) for d in range(1, 4)}
)

# RED profiles: gentle for in-contract traffic, aggressive for the higher loss priorities.
DROP_PROFILES = (
    ("RED-LOW", ((60, 0), (100, 100))),
    ("RED-HIGH", ((30, 0), (100, 100))),
)
DROP_PROFILE_BY_LP = {"low": "RED-LOW", "medium-low": "RED-LOW", "medium-high": "RED-HIGH", "high": "RED-HIGH"}


@functools.lru_cache(maxsize=8192)
def junos_name(*parts: str) -> str:
    """``QOECTL-part-part``; capped at 64 characters with a stable hash so names stay unique (memoised: pure)."""
    name = "-".join((PREFIX, *parts))
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{digest.upper()}"


def if_ident(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").upper()


def split_unit(name: str) -> tuple[str, int | None]:
    """``ge-0/0/1.100`` -> (``ge-0/0/1``, 100); a name without a unit -> (name, None)."""
    ifd, dot, unit = name.rpartition(".")
    if dot and ifd and unit.isdigit():
        return ifd, int(unit)
    return name, None


def bits(dscp: int) -> str:
    """A DSCP as the 6-bit pattern Junos classifiers and rewrite rules take."""
    return format(dscp, "06b")


def filter_dscp(dscp: int) -> str:
    """A DSCP for firewall filters: the Junos alias when there is one, else the number (LE is 1)."""
    name = dscp_name(dscp)
    if dscp == 0:
        return "be"
    return name if name in JUNOS_DSCP_ALIASES else str(dscp)


def junos_queue(c: QosClass) -> int:
    """Default class on queue 0 (Junos' fallback queue); the others after it in plan order."""
    return 0 if c.is_default else c.queue + 1


def loss_priority(c: QosClass, dscp: int) -> str:
    i = c.dscps.index(dscp)
    return LOSS_PRIORITIES[min(i, len(LOSS_PRIORITIES) - 1)]


MIN_TRANSMIT_BPS = 3200  # transmit-rate <rate>: 3200 through 160,000,000,000 bps


def strict_rate_bps(a: Allocation) -> int:
    """A strict class's ``transmit-rate`` in bps: exactly its policed guarantee (Junos takes 3,200 bps and up)."""
    return max(MIN_TRANSMIT_BPS, (a.police_kbps or a.guaranteed_kbps) * 1000)


@functools.lru_cache(maxsize=4096)
def _transmit_percents(
    classes: tuple[QosClass, ...], allocations: tuple[Allocation, ...], link_kbps: int
) -> tuple[tuple[str, int], ...]:
    """Percent of the (shaped) link per class, whole numbers summing to 100, as items.

    Strict classes are rounded *up* (their rate is also their rate limit, so rounding down would police
    traffic the plan admits). Memoised, as devices with the same classes and link share it.
    """
    exact = {a.class_name: 100.0 * a.guaranteed_kbps / link_kbps for a in allocations}
    default = next(c.name for c in classes if c.is_default)
    return tuple(whole_percents(exact, default, frozenset(c.name for c in classes if c.strict)).items())


# --------------------------------------------------------------------------- firewall filter terms


def _of_family(prefixes: tuple[str, ...], family: str) -> list[str]:
    version = 4 if family == "inet" else 6
    return [p for p in prefixes if base.network(p).version == version]


@functools.lru_cache(maxsize=8192)
def match_families(m: PlanMatch) -> tuple[str, ...]:
    """Families a match applies to: every given prefix field must keep a prefix of that family.

    Memoised (a frozen ``PlanMatch`` is its own key): every device that carries a
    journey asks this again for the same match, up to four times per device.
    """
    fields = [f for f in (m.source_prefixes, m.destination_prefixes) if f]
    return tuple(fam for fam in ("inet", "inet6") if all(_of_family(f, fam) for f in fields))


def _ports(ranges: tuple[tuple[int, int], ...]) -> list[str]:
    return [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges]


def from_conditions(m: PlanMatch, family: str) -> list[str]:
    """``from`` conditions of one term; Junos ORs repeated values of one condition and ANDs conditions."""
    return list(_conditions(m, family))


@functools.lru_cache(maxsize=8192)
def _conditions(m: PlanMatch, family: str) -> tuple[str, ...]:
    """:func:`from_conditions`, memoised per match and family (the same journey match is on many devices)."""
    proto_kw = "protocol" if family == "inet" else "next-header"
    conds: list[str] = []
    if m.protocol in ("udp", "tcp"):
        conds.append(f"{proto_kw} {m.protocol}")
    elif m.protocol == "icmp":
        conds.append(f"{proto_kw} {'icmp' if family == 'inet' else 'icmp6'}")
    conds += [f"source-address {p}" for p in _of_family(m.source_prefixes, family)]
    conds += [f"destination-address {p}" for p in _of_family(m.destination_prefixes, family)]
    conds += [f"source-port {p}" for p in _ports(m.source_ports)]
    conds += [f"destination-port {p}" for p in _ports(m.destination_ports)]
    if m.dscp is not None:
        conds.append(f"{'dscp' if family == 'inet' else 'traffic-class'} {filter_dscp(m.dscp)}")
    return tuple(conds)


class Term(NamedTuple):
    """One firewall filter term: its name, ``from`` conditions and ``then`` actions."""

    name: str
    conditions: tuple[str, ...]
    actions: tuple[str, ...]


def _mark_actions(fc: str, lp: str, dscp: int, family: str) -> tuple[str, ...]:
    set_dscp = "dscp" if family == "inet" else "traffic-class"
    return (f"forwarding-class {fc}", f"loss-priority {lp}", f"{set_dscp} {filter_dscp(dscp)}", "accept")


@functools.lru_cache(maxsize=8192)
def _rule_terms(rule: MarkingRule, family: str, fc: str, lp: str) -> tuple[Term, ...]:
    """The marking terms of one journey in one family (memoised: identical on every device that carries it)."""
    terms: list[Term] = []
    k = 0
    for m in rule.matches:
        if family not in match_families(m):
            continue
        k += 1
        terms.append(Term(f"M{k}-{rule.ident}", _conditions(m, family), _mark_actions(fc, lp, rule.dscp, family)))
    return tuple(terms)


@functools.lru_cache(maxsize=1024)
def _marking_terms(
    markings: tuple[MarkingRule, ...], classes: tuple[QosClass, ...], family: str, fc_of: tuple[tuple[str, str], ...]
) -> tuple[Term, ...]:
    """Every journey's terms in one family; memoised because devices that carry the same journeys share them."""
    by_name = {c.name: c for c in classes}
    fc = dict(fc_of)
    terms: list[Term] = []
    for rule in markings:
        cls = by_name[rule.class_name]
        terms += _rule_terms(rule, family, fc[cls.name], loss_priority(cls, rule.dscp))
    return tuple(terms)


def _filter_terms(
    markings: tuple[MarkingRule, ...],
    classes: tuple[QosClass, ...],
    family: str,
    trusted: bool,
    fc_of: Mapping[str, str],
) -> tuple[Term, ...]:
    terms = _marking_terms(markings, classes, family, tuple(sorted(fc_of.items())))
    default = next(c for c in classes if c.is_default)
    if trusted:
        return (*terms, Term("TRUSTED", (), ("accept",)))
    return (*terms, Term("UNTRUSTED", (), _mark_actions(fc_of[default.name], "low", 0, family)))


Codes = tuple[tuple[str, str], ...]  # (code point, loss priority)
Rewrites = tuple[tuple[str, str], ...]  # (loss priority, code point)


@functools.lru_cache(maxsize=1024)
def _class_codes(c: QosClass) -> tuple[Codes, Rewrites, tuple[str, ...]]:
    """A class's (code point, loss priority) pairs, its rewrite code points and its loss priorities in order.

    Memoised per class: they depend on the class alone, and every device and WAN
    link asked for them again.
    """
    first: dict[str, int] = {}
    for d in c.dscps:
        first.setdefault(loss_priority(c, d), d)
    codes = tuple((bits(d), loss_priority(c, d)) for d in c.dscps)
    # One rewrite code point per (class, loss priority): the first DSCP with that priority.
    rewrites = tuple((lp, bits(d)) for lp, d in first.items())
    lps = tuple(sorted({loss_priority(c, d) for d in c.dscps}, key=LOSS_PRIORITIES.index))
    return codes, rewrites, lps


# --------------------------------------------------------------------------- renderer


class Scheduler(NamedTuple):
    """One class's scheduler on one WAN link; ``drop_profiles`` are (loss priority, drop profile)."""

    fc: str
    name: str
    strict: bool
    rate_bps: int | None  # strict classes: transmit-rate in bps
    percent: int
    drop_profiles: tuple[tuple[str, str], ...]


class WanLink(NamedTuple):
    """A WAN interface's scheduler map and how it is attached."""

    ifd: str
    unit: int | None  # None: the interface name has no unit
    class_unit: int  # the unit classifiers and rewrite rules go on (0 when the name has none)
    cos_if: str  # "ifd" or "ifd unit N", as class-of-service interfaces takes it
    map: str
    shaping_bps: int | None
    trust_dscp: bool
    schedulers: tuple[Scheduler, ...]


class LanUnit(NamedTuple):
    """A LAN unit and the marking filters (IPv4, IPv6) on its input."""

    ifd: str
    unit: int
    trust_dscp: bool
    filter: str
    filter6: str


@functools.lru_cache(maxsize=1024)
def _forwarding_classes(classes: tuple[QosClass, ...]) -> tuple[tuple[str, int, Codes, Rewrites], ...]:
    """(forwarding class, queue, classifier code points, rewrite code points) per class, in queue order (memoised)."""
    rows = []
    for c in sorted(classes, key=junos_queue):
        codes, rewrites, _ = _class_codes(c)
        # Only the journeys' classes are rewritten: what the plan does not own keeps its DSCP.
        rows.append((junos_name(c.ident), junos_queue(c), codes, () if c.is_default or c.network_control else rewrites))
    return tuple(rows)


@functools.lru_cache(maxsize=4096)
def _wan_link(classes: tuple[QosClass, ...], iface: InterfacePlan) -> WanLink:
    """One WAN interface's schedulers and scheduler map (memoised: many devices have the same classes and links)."""
    assert iface.link_kbps
    ifd, unit = split_unit(iface.name)
    pct = dict(_transmit_percents(classes, iface.allocations, iface.link_kbps))
    ident = if_ident(iface.name)
    rows = []
    for c in sorted(classes, key=junos_queue):
        a = iface.allocation(c.name)
        assert a is not None
        lps = _class_codes(c)[2]
        drops = tuple((lp, junos_name(DROP_PROFILE_BY_LP[lp])) for lp in lps) if c.aqm else ()
        rate = strict_rate_bps(a) if c.strict else None
        rows.append(Scheduler(junos_name(c.ident), junos_name(ident, c.ident), c.strict, rate, pct[c.name], drops))
    return WanLink(
        ifd,
        unit,
        0 if unit is None else unit,
        ifd if unit is None else f"{ifd} unit {unit}",
        junos_name("SM", ident),
        iface.shape_kbps * 1000 if iface.shape_kbps else None,
        iface.trust_dscp,
        tuple(rows),
    )


@functools.lru_cache(maxsize=1024)
def _filters(
    markings: tuple[MarkingRule, ...], classes: tuple[QosClass, ...], need: frozenset[tuple[str, bool]]
) -> tuple[tuple[str, bool, str, tuple[Term, ...]], ...]:
    """(family, trusted, name, terms) of each marking filter in ``need`` (memoised per journeys and classes)."""
    fc_of = {c.name: junos_name(c.ident) for c in classes}
    out = []
    for fam in ("inet", "inet6"):
        for trusted in (True, False):
            if (fam, trusted) in need:
                name = junos_name("MARK" + ("6" if fam == "inet6" else ""), *(() if trusted else ("UNTRUSTED",)))
                out.append((fam, trusted, name, _filter_terms(markings, classes, fam, trusted, fc_of)))
    return tuple(out)


class JuniperJunosRenderer(Renderer):
    platform = "juniper_junos"
    capabilities = frozenset(
        {
            base.MARKING,
            base.DSCP_CLASSIFY,
            base.QUEUING,
            base.STRICT_PRIORITY,
            base.SHAPING,
            base.AQM,
            base.PORT_RANGES,
            base.IPV6,
        }
    )
    degradable: ClassVar[Mapping[str, str]] = {
        base.FAIR_QUEUE: "Junos schedulers have no per-flow fair queuing inside a queue; "
        "the class keeps its rate, its RED drop profiles and one FIFO queue",
    }
    # MX (Trio): 8 queues per interface, one strict-high queue per interface, transmit-rate in
    # whole percent; physical-interface shaping-rate from 160 kbit/s up to 6.4 Tbit/s.
    limits = Limits(
        max_classes=8,
        max_strict_classes=1,
        min_bandwidth_pct=1.0,
        min_shape_kbps=160,
        max_shape_kbps=6_400_000_000,
        # Whole-percent steps are qoectl's choice of "transmit-rate percent"; Junos also takes a rate.
        qoectl_limits=frozenset({"min_bandwidth_pct"}),
    )
    outputs = (("cos.set", "cos.set.j2"),)
    network_control = True  # a forwarding class for CS6/CS7 and host-outbound-traffic

    def explain_tokens(self, plan: DevicePlan, journey: str) -> list[str]:
        tokens = super().explain_tokens(plan, journey)
        for rule in plan.markings:
            if rule.journey == journey:
                tokens += [f"M{k}-{rule.ident}" for k in range(1, 2 * len(rule.matches) + 1)]
                cls = plan.qos_class(rule.class_name)
                tokens += [junos_name(cls.ident)]
                tokens += [junos_name(if_ident(i.name), cls.ident) for i in plan.wan_interfaces]
        return tokens

    def context(self, plan: DevicePlan) -> dict[str, Any]:
        """Flat rows the template unpacks (see :class:`WanLink`, :class:`LanUnit`): its loops look nothing up."""
        wan = [_wan_link(plan.classes, i) for i in plan.wan_interfaces if i.link_kbps]
        need = frozenset((fam, i.trust_dscp) for i in plan.lan_interfaces for fam in ("inet", "inet6"))
        filters = _filters(plan.markings, plan.classes, need)
        filter_name = {(fam, trusted): name for fam, trusted, name, _ in filters}
        lan: list[LanUnit] = []
        for iface in plan.lan_interfaces:
            ifd, unit = split_unit(iface.name)
            trusted = iface.trust_dscp
            names = (filter_name[("inet", trusted)], filter_name[("inet6", trusted)])
            lan.append(LanUnit(ifd, 0 if unit is None else unit, trusted, *names))
        host_class = plan.network_control or next(c for c in plan.classes if c.is_default)
        return {
            "plan": plan,
            "classes": _forwarding_classes(plan.classes),
            "wan": wan,
            "lan": lan,
            "filters": [(fam, name, terms) for fam, _, name, terms in filters],
            "uses_aqm": any(sched.drop_profiles for link in wan for sched in link.schedulers),
            "drop_profiles": [(junos_name(n), points) for n, points in DROP_PROFILES],
            "classifier": junos_name("CLASSIFY"),
            "classifier6": junos_name("CLASSIFY6"),
            "rewrite": junos_name("REWRITE"),
            "rewrite6": junos_name("REWRITE6"),
            "host_fc": junos_name(host_class.ident),
        }


RENDERER = JuniperJunosRenderer()
