"""FortiOS SD-WAN and shaping, read back from the rendered CLI script.

Chain: the SD-WAN rules the header names for a journey (``# sdwan rule N:
journey NAME``) -> ``dscp-forward-tag`` (6-bit binary) -> the shaping policies
whose ``comment`` names the journey -> ``class-id`` (a defined traffic class)
-> on each interface with an ``egress-shaping-profile``: that profile's entry
for the class (or its ``default-class-id`` when the policy does not cover the
interface) -> strict = ``priority top`` with maximum = guaranteed bandwidth
(served first, capped at its guarantee), share = ``guaranteed-bandwidth-
percentage`` (percent of the interface ``outbandwidth``, the link rate).

If the trusted-DSCP shaping policies send the journey's DSCP elsewhere than
its own shaping policy does, the chain does not close: :class:`ParseError`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from tests.parsers import DeviceTreatment, ParseError, dscp_value, journey_key, treatment

RULE = re.compile(r"^#\s*sdwan rule (\d+): journey (\S+)")
JOURNEY_COMMENT = re.compile(r"^qoectl journey (\S+)$")


@dataclass
class Block:
    """A ``config`` table or an ``edit`` entry: settings plus nested blocks."""

    settings: dict[str, list[str]] = field(default_factory=dict)
    tables: dict[str, dict[str, Block]] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        values = self.settings.get(key)
        return values[0] if values else None


def read(text: str) -> Block:
    """FortiOS ``config``/``edit``/``set``/``next``/``end`` script -> nested blocks."""
    root = Block()
    stack: list[Block] = [root]
    tables: list[dict[str, Block]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        if words[0] == "config":
            table = stack[-1].tables.setdefault(" ".join(words[1:]), {})
            tables.append(table)
            stack.append(Block())  # settings directly inside a config table (e.g. "set status")
            table.setdefault("", stack[-1])
        elif words[0] == "edit":
            entry = tables[-1].setdefault(words[1], Block())
            stack.append(entry)
        elif words[0] == "set":
            stack[-1].settings[words[1]] = words[2:]
        elif words[0] == "next":
            stack.pop()
        elif words[0] == "end":
            stack.pop()
            tables.pop()
        else:
            raise ParseError(f"unexpected FortiOS line {line!r}")
    if len(stack) != 1:
        raise ParseError("unbalanced config/edit blocks")
    return root


def _table(root: Block, name: str) -> dict[str, Block]:
    return {k: v for k, v in root.tables.get(name, {}).items() if k}


def parse(files: dict[str, str]) -> DeviceTreatment:
    text = files["fortios.conf"]
    root = read(text)
    rule_journey = {m.group(1): m.group(2) for m in map(RULE.match, text.splitlines()) if m}
    sdwan = root.tables["system sdwan"][""]
    rules = {k: v for k, v in sdwan.tables.get("service", {}).items() if k}
    checks = {k for k in sdwan.tables.get("health-check", {}) if k}
    addresses = set(_table(root, "firewall address")) | {"all"}
    marks: dict[str, int] = {}
    for rid, journey in rule_journey.items():
        rule = rules.get(rid)
        if rule is None:
            raise ParseError(f"header names SD-WAN rule {rid}, which is not configured")
        for a in rule.settings.get("src", []) + rule.settings.get("dst", []):
            if a not in addresses:
                raise ParseError(f"SD-WAN rule {rid} uses undefined address {a}")
        for hc in (k for k in rule.tables.get("sla", {}) if k):
            if hc not in checks:
                raise ParseError(f"SD-WAN rule {rid} uses undefined health-check {hc}")
        if rule.get("dscp-forward") != "enable" or rule.get("dscp-forward-tag") is None:
            raise ParseError(f"SD-WAN rule {rid} (journey {journey}) does not mark DSCP")
        dscp = dscp_value(str(rule.get("dscp-forward-tag")))
        if marks.setdefault(journey_key(journey), dscp) != dscp:
            raise ParseError(f"journey {journey} is marked with two DSCPs")
    classes = set(_table(root, "firewall traffic-class"))
    journey_class: dict[str, str] = {}
    dscp_class: dict[int, str] = {}
    dstintf: dict[str, set[str]] = {}
    for pid, sp in _table(root, "firewall shaping-policy").items():
        cid = str(sp.get("class-id"))
        if cid not in classes:
            raise ParseError(f"shaping-policy {pid} uses undefined traffic class {cid}")
        m = JOURNEY_COMMENT.match(sp.get("comment") or "")
        if m:
            key = journey_key(m.group(1))
            if journey_class.setdefault(key, cid) != cid:
                raise ParseError(f"journey {m.group(1)} is shaped into two classes")
            dstintf.setdefault(key, set()).update(sp.settings.get("dstintf", []))
        elif sp.get("tos") and sp.get("tos-mask") == "0xfc":
            dscp_class.setdefault(int(str(sp.get("tos")), 16) >> 2, cid)
    profiles = _table(root, "firewall shaping-profile")
    links: dict[str, tuple[str, dict[str, Block]]] = {}
    for ifname, intf in _table(root, "system interface").items():
        pname = intf.get("egress-shaping-profile")
        if pname is None:
            continue
        if pname not in profiles or intf.get("outbandwidth") is None:
            raise ParseError(f"{ifname}: shaping profile {pname} undefined or no outbandwidth")
        entries = {str(e.get("class-id")): e for k, e in profiles[pname].tables["shaping-entries"].items() if k}
        total = sum(int(str(e.get("guaranteed-bandwidth-percentage"))) for e in entries.values())
        if total > 100:
            raise ParseError(f"shaping profile {pname} guarantees {total} %")
        links[ifname] = (str(profiles[pname].get("default-class-id")), entries)
    out: DeviceTreatment = {}
    for journey, dscp in sorted(marks.items()):
        if journey not in journey_class:
            raise ParseError(f"journey {journey} is marked but never shaped into a class")
        cid = journey_class[journey]
        if dscp in dscp_class and dscp_class[dscp] != cid:
            raise ParseError(f"journey {journey}: its DSCP {dscp} is classed {dscp_class[dscp]}, the journey {cid}")
        per_if: dict[str, tuple[bool, float | None]] = {}
        for ifname, (default, entries) in links.items():
            here = cid if ifname in dstintf[journey] else default
            if here not in entries:
                raise ParseError(f"class {here} has no shaping entry on {ifname}")
            e = entries[here]
            guaranteed = int(str(e.get("guaranteed-bandwidth-percentage")))
            strict = e.get("priority") == "top" and int(str(e.get("maximum-bandwidth-percentage"))) == guaranteed
            per_if[ifname] = (strict, float(guaranteed))
        out[journey] = treatment(journey, dscp, per_if)
    return out
