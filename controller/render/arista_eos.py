"""Arista EOS: DSCP -> traffic-class maps, ACL-based marking policy and per-interface tx-queues.

The pipeline on EOS:

* ``qos map dscp ... to traffic-class N`` for all 64 code points: the plan's
  DSCPs go to their class, every other code point to the default class (an
  unmapped code point would otherwise land wherever the platform default puts
  it), and ``qos map traffic-class N to tx-queue N`` pins the queue;
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

import hashlib
from collections.abc import Mapping
from itertools import product
from typing import Any, ClassVar

from controller.compile.plan import DevicePlan, InterfacePlan, PlanMatch, QosClass
from controller.render import base
from controller.render.base import Limits, Renderer
from controller.render.juniper_junos import whole_percents  # shared largest-remainder rounding
from controller.spec.types import dscp_name

PREFIX = "QOECTL"
MAX_NAME = 64
TX_QUEUES = 8

# DSCP names EOS accepts in ACLs and ``set dscp`` (anything else, e.g. LE = 1, is written as a number).
EOS_DSCP_NAMES = {"ef"} | {f"cs{i}" for i in range(8)} | {f"af{c}{d}" for c in range(1, 5) for d in range(1, 4)}


def eos_name(*parts: str) -> str:
    """``QOECTL-part-part``, capped at 64 characters with a stable hash."""
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


def match_versions(m: PlanMatch) -> tuple[int, ...]:
    """IP versions a match applies to: every given prefix field must keep a prefix of that version."""
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


# --------------------------------------------------------------------------- tx-queues


def _queues(plan: DevicePlan, iface: InterfacePlan) -> dict[str, Any]:
    rr = [c for c in plan.classes if not c.strict]
    kbps = {c.name: float(iface.allocation(c.name).guaranteed_kbps) for c in rr}  # type: ignore[union-attr]
    total = sum(kbps.values()) or 1.0
    default = next(c.name for c in rr if c.is_default)
    share = whole_percents({n: 100.0 * k / total for n, k in kbps.items()}, default)
    rows = []
    for c in sorted(plan.classes, key=lambda c: tx_queue(plan, c)):
        a = iface.allocation(c.name)
        assert a is not None
        rows.append(
            {
                "cls": c,
                "queue": tx_queue(plan, c),
                "shape_kbps": (a.police_kbps or a.guaranteed_kbps) if c.strict else None,
                "percent": None if c.strict else share[c.name],
            }
        )
    return {"iface": iface, "rows": rows}


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
    # 8 tx-queues; any of them may be strict, but the default class must stay round-robin.
    limits = Limits(max_classes=TX_QUEUES, max_strict_classes=TX_QUEUES - 1, min_bandwidth_pct=1.0)
    outputs = (("qos.cfg", "qos.cfg.j2"),)

    def explain_tokens(self, plan: DevicePlan, journey: str) -> list[str]:
        tokens = super().explain_tokens(plan, journey)
        for rule in plan.markings:
            if rule.journey == journey:
                tokens += [eos_name("J", rule.ident), eos_name("J6", rule.ident)]
                cls = plan.qos_class(rule.class_name)
                tokens += [f"tx-queue {tx_queue(plan, cls)}"]
        return tokens

    def context(self, plan: DevicePlan) -> dict[str, Any]:
        acls = []
        for rule in plan.markings:
            cls = plan.qos_class(rule.class_name)
            for version in (4, 6):
                lines: list[str] = []
                for m in rule.matches:
                    if version in match_versions(m):
                        lines += acl_lines(m, version)
                if lines:
                    name = eos_name("J" if version == 4 else "J6", rule.ident)
                    acls.append(
                        {
                            "rule": rule,
                            "version": version,
                            "name": name,
                            "lines": list(dict.fromkeys(lines)),
                            "dscp": eos_dscp(rule.dscp),
                            "tc": tx_queue(plan, cls),
                        }
                    )
        default = next(c for c in plan.classes if c.is_default)
        tc_of_dscp = {d: tx_queue(plan, c) for c in plan.classes for d in c.dscps}
        by_tc: dict[int, list[int]] = {}
        for d in range(64):
            by_tc.setdefault(tc_of_dscp.get(d, tx_queue(plan, default)), []).append(d)
        lan = plan.lan_interfaces
        return {
            "plan": plan,
            "acls": acls,
            "dscp_maps": sorted(by_tc.items()),
            "tcs": sorted({tx_queue(plan, c) for c in plan.classes}),
            "queuing": [_queues(plan, i) for i in plan.wan_interfaces if i.link_kbps],
            "lan": lan,
            "mark_trusted": eos_name("MARK"),
            "mark_untrusted": eos_name("MARK-UNTRUSTED"),
            "need_trusted": any(i.trust_dscp for i in lan),
            "need_untrusted": any(not i.trust_dscp for i in lan),
            "any_v4": eos_name("ANY"),
            "any_v6": eos_name("ANY6"),
            "default_tc": tx_queue(plan, default),
        }


RENDERER = AristaEosRenderer()
