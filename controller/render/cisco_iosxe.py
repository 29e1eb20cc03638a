"""Cisco IOS-XE: MQC class-maps, a LAN-edge marking policy, per-WAN queuing and a hierarchical shaper.

The queuing policy follows the Cisco WAN-edge design: strict classes get
``priority level N`` with an explicit policer (so priority traffic can never
starve the rest), the other classes share what is left with ``bandwidth
remaining percent``, ``fair-queue`` and ``random-detect dscp-based`` where the
class asks for them. Sub-rate links get a parent shaper with the queuing policy
nested under ``class class-default``.
"""

from __future__ import annotations

import ipaddress
import re
from itertools import product
from typing import Any

from controller.compile.plan import DevicePlan, InterfacePlan, PlanMatch
from controller.render import base
from controller.render.base import Limits, Renderer, percent_split

PREFIX = "QOECTL"


def if_ident(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").upper()


def _v4(prefix: str | None) -> str:
    if prefix is None:
        return "any"
    net = ipaddress.ip_network(prefix)
    if net.prefixlen == 32:
        return f"host {net.network_address}"
    return f"{net.network_address} {net.hostmask}"


def _v6(prefix: str | None) -> str:
    if prefix is None:
        return "any"
    net = ipaddress.ip_network(prefix)
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
    dscp = f" dscp {m.dscp_name}" if m.dscp is not None else ""
    return [
        f"permit {proto} {addr(s)}{_port(sp)} {addr(d)}{_port(dp)}{dscp}"
        for s, d, sp, dp in product(srcs, dsts, sports, dports)
    ]


def _queuing(plan: DevicePlan, iface: InterfacePlan) -> dict[str, Any]:
    strict_level = 0
    rows = []
    rest = [c for c in plan.classes if not c.strict]
    shares = percent_split([float(iface.allocation(c.name).guaranteed_kbps) for c in rest])  # type: ignore[union-attr]
    share = dict(zip([c.name for c in rest], shares, strict=True))
    for c in plan.classes:
        a = iface.allocation(c.name)
        assert a is not None
        row: dict[str, Any] = {"cls": c, "name": "class-default" if c.is_default else f"{PREFIX}-{c.ident}"}
        if c.strict:
            strict_level += 1
            row["priority_level"] = strict_level
            row["police_bps"] = (a.police_kbps or a.guaranteed_kbps) * 1000
        else:
            row["remaining_pct"] = share[c.name]
        rows.append(row)
    ident = if_ident(iface.name)
    return {
        "iface": iface,
        "policy": f"{PREFIX}-Q-{ident}",
        "shaper": f"{PREFIX}-SHAPE-{ident}" if iface.shape_kbps else None,
        "shape_bps": (iface.shape_kbps or 0) * 1000,
        "rows": rows,
    }


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
    # ISR 4000 / ASR 1000 / Catalyst 8000: two priority levels; 8 queuing classes kept for portability.
    limits = Limits(max_classes=8, max_strict_classes=2, min_bandwidth_pct=1.0)
    outputs = (("qos.cfg", "qos.cfg.j2"),)

    def explain_tokens(self, plan: DevicePlan, journey: str) -> list[str]:
        tokens = super().explain_tokens(plan, journey)
        return tokens + [f"{PREFIX}-{t}" for t in tokens] + [f"{PREFIX}-J-{t}" for t in tokens]

    def context(self, plan: DevicePlan) -> dict[str, Any]:
        acls = []
        for rule in plan.markings:
            v4: list[str] = []
            v6: list[str] = []
            for m in rule.matches:
                if m.family in ("ipv4", "any"):
                    v4 += acl_lines(m, "ipv4")
                if m.family in ("ipv6", "any"):
                    v6 += acl_lines(m, "ipv6")
            acls.append(
                {
                    "rule": rule,
                    "classmap": f"{PREFIX}-J-{rule.ident}",
                    "v4": f"{PREFIX}-J-{rule.ident}" if v4 else None,
                    "v6": f"{PREFIX}-J6-{rule.ident}" if v6 else None,
                    "v4_lines": list(dict.fromkeys(v4)),
                    "v6_lines": list(dict.fromkeys(v6)),
                }
            )
        queuing = [_queuing(plan, i) for i in plan.wan_interfaces if i.link_kbps]
        lan = plan.lan_interfaces
        return {
            "plan": plan,
            "prefix": PREFIX,
            "acls": acls,
            "classes": [c for c in plan.classes if not c.is_default],
            "queuing": queuing,
            "lan": lan,
            "mark_trusted": f"{PREFIX}-MARK",
            "mark_untrusted": f"{PREFIX}-MARK-UNTRUSTED",
            "need_untrusted": any(not i.trust_dscp for i in lan),
            "need_trusted": any(i.trust_dscp for i in lan),
        }


RENDERER = CiscoIosXeRenderer()
