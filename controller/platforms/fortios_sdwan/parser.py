"""FortiOS SD-WAN and shaping: the syntax of the CLI script (:func:`tree`, as apply reads the rendered file and
``show`` output) and its meaning.

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

from controller.configtext import meaning
from controller.configtext.meaning import DevicePaths, DeviceTreatment, ParseError, dscp_value, journey_key

__all__ = ["Block", "Value", "parse", "paths", "tree", "words_of"]

RULE = re.compile(r"^#\s*sdwan rule (\d+): journey (\S+)")
JOURNEY_COMMENT = re.compile(r"^qoectl journey (\S+)$")

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Value:
    words: tuple[str, ...]  # for comparing
    raw: str  # as written, for sending


@dataclass
class Block:
    """A ``config`` object or an ``edit`` entry (settings and nested blocks), or a table (``entries``)."""

    settings: dict[str, Value] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)
    entries: dict[str, Block] | None = None

    def get(self, name: str) -> str:
        v = self.settings.get(name)
        return v.words[0] if v and v.words else ""

    def words(self, name: str) -> tuple[str, ...]:
        v = self.settings.get(name)
        return v.words if v else ()

    def table(self, name: str) -> dict[str, Block]:
        """The entries of the nested table ``config NAME`` (empty when there is none)."""
        found = self.blocks.get(name)
        return dict(found.entries or {}) if found else {}


def words_of(text: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(text, posix=True))
    except ValueError:
        return tuple(text.split())


def tree(text: str) -> dict[str, Block]:
    """A FortiOS script or ``show`` output -> top-level sections (``"system sdwan"`` ...) as blocks."""
    tops: dict[str, Block] = {}
    stack: list[tuple[Path, Block]] = []
    for raw in text.replace("\r", "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        verb, _, rest = line.partition(" ")
        args = words_of(rest)
        if verb == "config":
            name = " ".join(args)
            if not stack:
                block = tops.setdefault(name, Block())
                stack.append(((name,), block))
            else:
                path, parent = stack[-1]
                block = parent.blocks.setdefault(name, Block())
                stack.append(((*path, name), block))
        elif verb == "edit" and stack and args:
            path, table = stack[-1]
            if table.entries is None:
                table.entries = {}
            stack.append((path, table.entries.setdefault(args[0], Block())))
        elif verb == "set" and stack and args:
            path, block = stack[-1]
            value_text = rest.partition(" ")[2].strip()
            block.settings[args[0]] = Value(words_of(value_text), value_text)
        elif verb in ("next", "end") and stack:
            stack.pop()
        else:
            raise ParseError(f"unexpected FortiOS line {line!r}")
    if stack:
        raise ParseError("unbalanced config/edit blocks")
    return tops


def _table(tops: dict[str, Block], name: str) -> dict[str, Block]:
    found = tops.get(name)
    return dict(found.entries or {}) if found else {}


def parse(files: dict[str, str]) -> DeviceTreatment:
    text = files["fortios.conf"]
    root = tree(text)
    rule_journey = {m.group(1): m.group(2) for m in map(RULE.match, text.splitlines()) if m}
    sdwan = root.get("system sdwan", Block())
    rules = sdwan.table("service")
    checks = set(sdwan.table("health-check"))
    addresses = set(_table(root, "firewall address")) | {"all"}
    marks: dict[str, int] = {}
    for rid, journey in rule_journey.items():
        rule = rules.get(rid)
        if rule is None:
            raise ParseError(f"header names SD-WAN rule {rid}, which is not configured")
        for a in rule.words("src") + rule.words("dst"):
            if a not in addresses:
                raise ParseError(f"SD-WAN rule {rid} uses undefined address {a}")
        for hc in rule.table("sla"):
            if hc not in checks:
                raise ParseError(f"SD-WAN rule {rid} uses undefined health-check {hc}")
        if rule.get("dscp-forward") != "enable" or not rule.get("dscp-forward-tag"):
            raise ParseError(f"SD-WAN rule {rid} (journey {journey}) does not mark DSCP")
        dscp = dscp_value(rule.get("dscp-forward-tag"))
        if marks.setdefault(journey_key(journey), dscp) != dscp:
            raise ParseError(f"journey {journey} is marked with two DSCPs")
    classes = set(_table(root, "firewall traffic-class"))
    journey_class: dict[str, str] = {}
    dscp_class: dict[int, str] = {}
    dstintf: dict[str, set[str]] = {}
    for pid, sp in _table(root, "firewall shaping-policy").items():
        cid = sp.get("class-id")
        if cid not in classes:
            raise ParseError(f"shaping-policy {pid} uses undefined traffic class {cid}")
        m = JOURNEY_COMMENT.match(sp.get("comment"))
        if m:
            key = journey_key(m.group(1))
            if journey_class.setdefault(key, cid) != cid:
                raise ParseError(f"journey {m.group(1)} is shaped into two classes")
            dstintf.setdefault(key, set()).update(sp.words("dstintf"))
        elif sp.get("tos") and sp.get("tos-mask") == "0xfc":
            dscp_class.setdefault(int(sp.get("tos"), 16) >> 2, cid)
    profiles = _table(root, "firewall shaping-profile")
    links: dict[str, tuple[str, dict[str, Block]]] = {}
    for ifname, intf in _table(root, "system interface").items():
        pname = intf.get("egress-shaping-profile")
        if not pname:
            continue
        if pname not in profiles or not intf.get("outbandwidth"):
            raise ParseError(f"{ifname}: shaping profile {pname} undefined or no outbandwidth")
        entries = {e.get("class-id"): e for e in profiles[pname].table("shaping-entries").values()}
        total = sum(int(e.get("guaranteed-bandwidth-percentage")) for e in entries.values())
        if total > 100:
            raise ParseError(f"shaping profile {pname} guarantees {total} %")
        links[ifname] = (profiles[pname].get("default-class-id"), entries)
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
            guaranteed = int(e.get("guaranteed-bandwidth-percentage"))
            strict = e.get("priority") == "top" and int(e.get("maximum-bandwidth-percentage")) == guaranteed
            per_if[ifname] = (strict, float(guaranteed))
        out[journey] = meaning.treatment(journey, dscp, per_if)
    return out


# -- path preference ------------------------------------------------------------------------------------------
#
# What the SD-WAN rules mean (FortiOS Administration Guide, "Lowest cost (SLA) strategy" and "Manual strategy"):
# in ``sla`` mode the members that meet the rule's health-check SLA, then the lowest cost, then
# ``priority-members`` order; in ``manual`` mode the first member in ``priority-members`` order that is up. With
# every member up, meeting the SLA and at equal cost, the first ``priority-members`` entry carries the journey
# either way.

SLA_FIELDS = {"latency-threshold": "latency", "jitter-threshold": "jitter", "packetloss-threshold": "loss"}


def paths(files: dict[str, str]) -> DevicePaths:
    """Journey -> where its SD-WAN rules send it: the first priority member's interface, and the SLA measured."""
    text = files["fortios.conf"]
    sdwan = tree(text).get("system sdwan", Block())
    entries = sdwan.table("members")
    members = {k: m.get("interface") for k, m in entries.items()}
    if len({m.get("cost") for m in entries.values()}) > 1:
        raise ParseError("members differ in cost: priority-members order alone does not decide")
    checks = sdwan.table("health-check")
    rules = sdwan.table("service")
    out: DevicePaths = {}
    for m in map(RULE.match, text.splitlines()):
        if not m:
            continue
        rid, journey = m.group(1), m.group(2)
        rule = rules.get(rid)
        if rule is None:
            raise ParseError(f"header names SD-WAN rule {rid}, which is not configured")
        order = rule.words("priority-members")
        if any(seq not in members for seq in order):
            raise ParseError(f"SD-WAN rule {rid} names a member that is not configured")
        sla = None
        if rule.get("mode") == "sla":
            refs = [(name, entry.get("id")) for name, entry in rule.table("sla").items()]
            if len(refs) != 1 or refs[0][0] not in checks:
                raise ParseError(f"SD-WAN rule {rid} in sla mode needs exactly one configured health-check")
            name, sla_id = refs[0]
            target = checks[name].table("sla").get(sla_id)
            if target is None:
                raise ParseError(f"health-check {name} has no SLA {sla_id}")
            sla = {v: float(target.get(k)) for k, v in SLA_FIELDS.items() if target.get(k)}
        elif rule.get("mode") not in ("manual", ""):  # "show" leaves the default (manual) out
            raise ParseError(f"SD-WAN rule {rid}: mode {rule.get('mode')} is not read")
        choice = meaning.PathChoice(
            frozenset({members[order[0]]}) if order else frozenset(), sla, tuple(members[k] for k in order)
        )
        if out.setdefault(journey_key(journey), choice) != choice:
            raise ParseError(f"journey {journey} is steered two ways")
    return out
