"""Arista EOS: DSCP -> traffic-class maps, ACL-based marking policy and per-interface tx-queues.

The pipeline on EOS:

* ``qos map dscp ... to traffic-class N`` for all 64 code points: the plan's
  DSCPs go to their class (CS6/CS7 to the plan's network-control class, a
  round-robin queue of its own), every other code point to the default class
  (an unmapped code point would otherwise land wherever the platform default
  puts it), and ``qos map traffic-class N to tx-queue N`` pins the queue. The
  maps only queue: no DSCP is rewritten but by the LAN marking policies;
* LAN ports get a ``policy-map type quality-of-service`` whose classes
  (``class-map type qos`` on one IPv4 or one IPv6 ACL each, since an EOS QoS
  class map takes a single ACL) ``set dscp`` and ``set traffic-class`` per
  journey; untrusted ports end with an explicit match-all class that sets
  DSCP 0, because EOS ``class-default`` does not match IP traffic;
* WAN ports get ``qos trust dscp``, ``shape rate`` on sub-rate links and one
  ``tx-queue`` block per class. EOS tx-queues are strict priority unless
  configured ``no priority``; the round-robin queues must sit below the strict
  ones, so the default and other rate classes take the lowest queue numbers
  and strict classes the highest. Strict queues are capped with ``shape rate``
  (kbps) at their guarantee, like IOS-XE's policed LLQ; round-robin queues get
  ``bandwidth percent`` shares of what the strict queues leave, as IOS-XE's
  ``bandwidth remaining percent``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from itertools import product
from typing import Any, ClassVar

from controller.plan import Allocation, DevicePlan, InterfacePlan, MarkingRule, PlanMatch, QosClass
from controller.render import base
from controller.render.base import Limits, Renderer, whole_percents
from controller.spec.types import dscp_name

PREFIX = "QOECTL"
MAX_NAME = 64
TX_QUEUES = 8

# DSCP names EOS accepts in ACLs and ``set dscp`` (anything else, e.g. LE = 1, is written as a number).
EOS_DSCP_NAMES = {"ef"} | {f"cs{i}" for i in range(8)} | {f"af{c}{d}" for c in range(1, 5) for d in range(1, 4)}


@functools.lru_cache(maxsize=8192)
def eos_name(*parts: str) -> str:
    """``QOECTL-part-part``, capped at 64 characters with a stable hash (memoised: pure, asked per device)."""
    name = "-".join((PREFIX, *parts))
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{digest.upper()}"


def eos_dscp(value: int) -> str:
    name = dscp_name(value)
    return name if name in EOS_DSCP_NAMES else str(value)


def tx_queue(plan: DevicePlan, c: QosClass) -> int:
    """Strict classes on the highest tx-queues, round-robin classes below them, the default class on 0."""
    n = len(plan.classes)
    if c.strict:
        return TX_QUEUES - 1 - c.queue
    return n - 1 - c.queue


# --------------------------------------------------------------------------- ACLs


def _of_family(prefixes: tuple[str, ...], version: int) -> list[str]:
    return [p for p in prefixes if base.network(p).version == version]


@functools.lru_cache(maxsize=8192)
def match_versions(m: PlanMatch) -> tuple[int, ...]:
    """IP versions a match applies to: every given prefix field must keep a prefix of that version (memoised)."""
    fields = [f for f in (m.source_prefixes, m.destination_prefixes) if f]
    return tuple(v for v in (4, 6) if all(_of_family(f, v) for f in fields))


def _addr(prefix: str | None) -> str:
    if prefix is None:
        return "any"
    net = base.network(prefix)
    return f"host {net.network_address}" if net.prefixlen == net.max_prefixlen else str(net)


def _port(r: tuple[int, int] | None) -> str:
    if r is None:
        return ""
    lo, hi = r
    return f" eq {lo}" if lo == hi else f" range {lo} {hi}"


def acl_lines(m: PlanMatch, version: int) -> list[str]:
    """ACL entries for one match: the cross product of its prefixes and ports (each field is any-of)."""
    if m.protocol == "any":
        proto = "ip" if version == 4 else "ipv6"
    elif m.protocol == "icmp":
        proto = "icmp" if version == 4 else "icmpv6"
    else:
        proto = m.protocol
    srcs: list[str | None] = list(_of_family(m.source_prefixes, version)) or [None]
    dsts: list[str | None] = list(_of_family(m.destination_prefixes, version)) or [None]
    sports: list[tuple[int, int] | None] = list(m.source_ports) or [None]
    dports: list[tuple[int, int] | None] = list(m.destination_ports) or [None]
    dscp = f" dscp {eos_dscp(m.dscp)}" if m.dscp is not None else ""
    return [
        f"permit {proto} {_addr(s)}{_port(sp)} {_addr(d)}{_port(dp)}{dscp}"
        for s, d, sp, dp in product(srcs, dsts, sports, dports)
    ]


@functools.lru_cache(maxsize=4096)
def _rule_acls(rule: MarkingRule) -> tuple[tuple[str, str, tuple[tuple[int, str], ...], str], ...]:
    """(IP version, ACL name, entries, DSCP) of one journey's ACLs, one per version it matches.

    Memoised per marking rule: the ACLs are the same on every device that carries
    the journey; only the traffic class is the device's own.
    """
    out = []
    for version in (4, 6):
        lines: list[str] = []
        for m in rule.matches:
            if version in match_versions(m):
                lines += acl_lines(m, version)
        if lines:
            name = eos_name("J" if version == 4 else "J6", rule.ident)
            numbered = tuple((10 * k, line) for k, line in enumerate(dict.fromkeys(lines), start=1))
            out.append(("ip" if version == 4 else "ipv6", name, numbered, eos_dscp(rule.dscp)))
    return tuple(out)


# --------------------------------------------------------------------------- tx-queues


@functools.lru_cache(maxsize=1024)
def _tx_queues(classes: tuple[QosClass, ...]) -> tuple[int, ...]:
    """:func:`tx_queue` of each class, in plan order (memoised per class list: shared by many devices)."""
    n = len(classes)
    return tuple(TX_QUEUES - 1 - c.queue if c.strict else n - 1 - c.queue for c in classes)


@functools.lru_cache(maxsize=1024)
def _dscp_maps(
    classes: tuple[QosClass, ...],
) -> tuple[tuple[tuple[int, str], ...], tuple[int, ...], int]:
    """All 64 code points grouped by traffic class (space-separated), the traffic classes in use and the default one.

    Unclaimed code points go to the default class. Memoised per class list.
    """
    queues = _tx_queues(classes)
    default_tc = next(q for c, q in zip(classes, queues, strict=True) if c.is_default)
    tc_of_dscp = {d: q for c, q in zip(classes, queues, strict=True) for d in c.dscps}
    by_tc: dict[int, list[int]] = {}
    for d in range(64):
        by_tc.setdefault(tc_of_dscp.get(d, default_tc), []).append(d)
    maps = tuple((tc, " ".join(str(d) for d in ds)) for tc, ds in sorted(by_tc.items()))
    return maps, tuple(sorted(set(queues))), default_tc


def trust_line(iface: InterfacePlan) -> str:
    return "qos trust dscp" if iface.trust_dscp else "no qos trust"


@functools.lru_cache(maxsize=4096)
def _queue_rows(
    classes: tuple[QosClass, ...], allocations: tuple[Allocation, ...]
) -> tuple[tuple[int, bool, int | None, int | None], ...]:
    """One interface's tx-queues: (queue, strict, shape rate in kbit/s, bandwidth percent).

    Memoised: the same classes and link rate give the same rows.
    """
    alloc = {a.class_name: a for a in reversed(allocations)}  # the first per class, as InterfacePlan.allocation
    queue = dict(zip((c.name for c in classes), _tx_queues(classes), strict=True))
    rr = [c for c in classes if not c.strict]
    kbps = {c.name: float(alloc[c.name].guaranteed_kbps) for c in rr}
    total = sum(kbps.values()) or 1.0
    default = next(c.name for c in rr if c.is_default)
    share = whole_percents({n: 100.0 * k / total for n, k in kbps.items()}, default)
    rows = []
    for c in sorted(classes, key=lambda c: queue[c.name]):
        a = alloc[c.name]
        shape = (a.police_kbps or a.guaranteed_kbps) if c.strict else None
        rows.append((queue[c.name], c.strict, shape, None if c.strict else share[c.name]))
    return tuple(rows)


class AristaEosRenderer(Renderer):
    platform = "arista_eos"
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
    degradable: ClassVar[Mapping[str, str]] = {
        base.AQM: "tx-queue WRED/ECN thresholds on EOS depend on the platform's buffers, so qoectl leaves "
        "EOS tx-queues tail-drop; the class keeps its queue and bandwidth",
        base.FAIR_QUEUE: "EOS tx-queues are FIFO; flows in a class share one queue",
    }
    not_rendered_yet: ClassVar[Mapping[str, str]] = {
        base.AQM: "EOS User Manual, Quality of Service: ECN and WRED thresholds on tx-queues, platform-dependent",
    }
    # 8 tx-queues; any of them may be strict, but the default class must stay round-robin.
    limits = Limits(max_classes=TX_QUEUES, max_strict_classes=TX_QUEUES - 1, min_bandwidth_pct=1.0)
    outputs = (("qos.cfg", "qos.cfg.j2"),)
    network_control = True  # CS6/CS7 map to a round-robin tx-queue of their own

    def explain_tokens(self, plan: DevicePlan, journey: str) -> list[str]:
        tokens = super().explain_tokens(plan, journey)
        for rule in plan.markings:
            if rule.journey == journey:
                tokens += [eos_name("J", rule.ident), eos_name("J6", rule.ident)]
                cls = plan.qos_class(rule.class_name)
                tokens += [f"tx-queue {tx_queue(plan, cls)}"]
        return tokens

    def context(self, plan: DevicePlan) -> dict[str, Any]:
        queue_of = {c.name: q for c, q in zip(plan.classes, _tx_queues(plan.classes), strict=True)}
        acls = [
            (ip, name, lines, dscp, queue_of[rule.class_name])
            for rule in plan.markings
            for ip, name, lines, dscp in _rule_acls(rule)
        ]
        dscp_maps, tcs, default_tc = _dscp_maps(plan.classes)
        lan = plan.lan_interfaces
        mark = {True: eos_name("MARK"), False: eos_name("MARK-UNTRUSTED")}
        return {
            "plan": plan,
            "acls": acls,
            "dscp_maps": dscp_maps,
            "tcs": tcs,
            "queuing": [
                (i.name, trust_line(i), i.shape_kbps, _queue_rows(plan.classes, i.allocations))
                for i in plan.wan_interfaces
                if i.link_kbps
            ],
            "lan": [(i.name, trust_line(i), mark[i.trust_dscp]) for i in lan],
            "mark_trusted": mark[True],
            "mark_untrusted": mark[False],
            "need_trusted": any(i.trust_dscp for i in lan),
            "need_untrusted": any(not i.trust_dscp for i in lan),
            "any_v4": eos_name("ANY"),
            "any_v6": eos_name("ANY6"),
            "default_tc": default_tc,
        }


RENDERER = AristaEosRenderer()
