"""Linux: nftables marking + classify chains and the tc HTB tree, read back from text.

Chain: ``... dscp set X comment "journey NAME"`` -> the ``qoe_classify`` rule
whose DSCP set contains X -> ``meta priority set MAJOR:MINOR`` -> the HTB class
with that classid on each WAN device (``prio 0`` is the strict tier, its
``rate`` the guarantee) -> share = rate / root-class rate. A DSCP no classify
rule names goes to the HTB ``default`` class.

A LAN is untrusted when a rule of the chain bleaches what arrives on it (an
``iifname`` rule that sets the DSCP); every other ingress is trusted.

LAN ingresses: the ``qoe_mark`` chain is walked rule by rule, as nftables
does: a rule applies to one family (``ip``/``ip6``), may name an ingress
(``iifname``), may test the DSCP (``ip dscp X``, ``!= X``, ``{ ... }``), may
set it, and ``return``/``accept`` ends the chain. Every ``iifname`` the chain
names is an ingress of its own; ``*`` stands for every other one (a trusted
LAN: no rule names it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from controller.configtext import meaning
from controller.configtext.meaning import ControlTreatment, DeviceTreatment, ParseError, Queue, dscp_value, journey_key

__all__ = ["Path", "control", "parse", "path_ingresses_skipped", "paths", "routing_lines", "steering"]

CLASSIFY = re.compile(r"\b(?:ip|ip6) dscp (\{[^}]*\}|\S+) meta priority set ([0-9a-f]+:[0-9a-f]+)")
HTB_QDISC = re.compile(r"^qdisc \S+ dev (\S+) root handle ([0-9a-f]+): htb default ([0-9a-f]+)")
HTB_CLASS = re.compile(r"^class \S+ dev (\S+) parent ([0-9a-f]+:[0-9a-f]*) classid ([0-9a-f]+:[0-9a-f]+) htb (.*)$")
LEAF_QDISC = re.compile(r"^qdisc \S+ dev (\S+) parent ([0-9a-f]+:[0-9a-f]+) handle \S+ (\S+)")
RATE = re.compile(r"\b(rate|ceil) (\d+)kbit\b")
PRIO = re.compile(r"\bprio (\d+)\b")
CHAIN = re.compile(r"chain (\S+) \{(.*?)\n\s*\}", re.S)
FAMILY = re.compile(r"\b(ip6?) (?:dscp|saddr|daddr)\b")
DSCP_TEST = re.compile(r"\b(?:ip6?) dscp (?!set\b)(!= )?(\{[^}]*\}|\S+)")
DSCP_SET = re.compile(r"\b(?:ip6?) dscp set (\S+)")
IIFNAME = re.compile(r'\biifname "([^"]+)"')
COMMENT = re.compile(r'\bcomment "([^"]*)"')
VERDICT = re.compile(r"\b(return|accept)\b")
AQM_LEAVES = {"fq_codel", "codel", "red", "pie", "fq_pie", "cake", "choke", "sfb"}


def _dscps(token: str) -> list[int]:
    return [dscp_value(t) for t in token.strip("{} ").split(",") if t.strip()]


def _classid(major: str, minor: str) -> str:
    return f"{int(major, 16):x}:{int(minor, 16):x}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the marking chain."""

    family: str  # "ip", "ip6" or "" (both)
    iifname: str | None
    negate: bool
    test: tuple[int, ...] | None  # DSCPs the rule tests for (None: no DSCP test)
    sets: int | None
    ends: bool  # return / accept: the chain stops here
    journey: str | None  # the journey a "journey NAME" comment names

    def applies(self, family: str, ingress: str, dscp: int) -> bool:
        if self.family and self.family != family:
            return False
        if self.iifname is not None and self.iifname != ingress:
            return False
        return self.test is None or (dscp in self.test) != self.negate


def _rule(text: str) -> Rule:
    fam = {m.group(1) for m in FAMILY.finditer(text)}
    if len(fam) > 1:
        raise ParseError(f"rule mixes ip and ip6: {text}")
    test = DSCP_TEST.search(text)
    sets = DSCP_SET.search(text)
    iif = IIFNAME.search(text)
    comment = COMMENT.search(text)
    before_comment = text[: comment.start()] if comment else text
    journey = comment.group(1)[len("journey ") :] if comment and comment.group(1).startswith("journey ") else None
    return Rule(
        family=fam.pop() if fam else "",
        iifname=iif.group(1) if iif else None,
        negate=bool(test and test.group(1)),
        test=tuple(_dscps(test.group(2))) if test else None,
        sets=dscp_value(sets.group(1)) if sets else None,
        ends=bool(VERDICT.search(before_comment)),
        journey=journey,
    )


def _chains(nft: str) -> dict[str, list[str]]:
    return {
        m.group(1): [line.strip() for line in m.group(2).splitlines()[1:] if line.strip()] for m in CHAIN.finditer(nft)
    }


def _walk(rules: list[Rule], family: str, ingress: str, dscp: int) -> int:
    """The DSCP a packet leaves the marking chain with (``rules`` are the ones its packet can match)."""
    for r in rules:
        if not r.applies(family, ingress, dscp):
            continue
        if r.sets is not None:
            dscp = r.sets
        if r.ends:
            break
    return dscp


@dataclass(frozen=True, slots=True)
class _Parsed:
    mark: list[Rule]
    ingresses: list[str]
    classid_of: dict[int, str]
    default: dict[str, str]  # WAN device -> default classid
    classes: dict[str, dict[str, tuple[int, int]]]  # WAN device -> classid -> (rate, prio)
    leaves: dict[str, dict[str, str]]  # WAN device -> classid -> leaf qdisc kind
    root_rate: dict[str, int]


def _parse(files: dict[str, str]) -> _Parsed:
    nft, tc = files["nftables.nft"], files["tc.batch"]
    chains = _chains(nft)
    if "qoe_mark" not in chains:
        raise ParseError("no qoe_mark chain")
    mark = [_rule(line) for line in chains["qoe_mark"]]
    ingresses = sorted({r.iifname for r in mark if r.iifname}) + ["*"]
    classid_of: dict[int, str] = {}
    for m in CLASSIFY.finditer(nft):
        major, minor = m.group(2).split(":")
        for d in _dscps(m.group(1)):
            if classid_of.setdefault(d, _classid(major, minor)) != _classid(major, minor):
                raise ParseError(f"DSCP {d} is classified into two classes")
    default: dict[str, str] = {}
    classes: dict[str, dict[str, tuple[int, int]]] = {}
    leaves: dict[str, dict[str, str]] = {}
    root_rate: dict[str, int] = {}
    for line in tc.splitlines():
        if q := HTB_QDISC.match(line):
            default[q.group(1)] = _classid(q.group(2), q.group(3))
        elif c := HTB_CLASS.match(line):
            dev, parent, cid, rest = c.groups()
            rates = dict((k, int(v)) for k, v in RATE.findall(rest))
            if parent.endswith(":"):
                root_rate[dev] = rates["rate"]
                continue
            prio = PRIO.search(rest)
            major, minor = cid.split(":")
            classes.setdefault(dev, {})[_classid(major, minor)] = (rates["rate"], int(prio.group(1)) if prio else 0)
        elif leaf := LEAF_QDISC.match(line):
            dev, parent, kind = leaf.groups()
            major, minor = parent.split(":")
            leaves.setdefault(dev, {})[_classid(major, minor)] = kind
    return _Parsed(mark, ingresses, classid_of, default, classes, leaves, root_rate)


def _queue_here(p: _Parsed, dev: str, dscp: int) -> str:
    cid = p.classid_of.get(dscp, p.default.get(dev, ""))
    if cid not in p.classes[dev]:
        raise ParseError(f"{dev}: DSCP {dscp} goes to class {cid}, which is not defined")
    return cid


def parse(files: dict[str, str]) -> DeviceTreatment:
    p = _parse(files)
    marks: dict[str, set[int]] = {}
    lan: dict[str, dict[str, set[int]]] = {}
    for k, r in enumerate(p.mark):
        if r.journey is None or r.sets is None:
            continue
        key = journey_key(r.journey)
        marks.setdefault(key, set()).add(r.sets)
        # A packet of this rule's traffic meets the rules without a journey and this one, in chain order.
        own = [x for j, x in enumerate(p.mark) if x.journey is None or j == k]
        arrives = r.test[0] if r.test and not r.negate else 0
        for family in ("ip", "ip6") if not r.family else (r.family,):
            for ingress in p.ingresses:
                lan.setdefault(key, {}).setdefault(ingress, set()).add(_walk(own, family, ingress, arrives))
    out: DeviceTreatment = {}
    for journey, dscps in sorted(marks.items()):
        dscp = meaning.single_mark(journey, dscps)
        per_if: dict[str, tuple[bool, float | None]] = {}
        for dev, leaves in p.classes.items():
            rate, prio = leaves[_queue_here(p, dev, dscp)]
            per_if[dev] = (prio == 0, 100.0 * rate / p.root_rate[dev])
        out[journey] = meaning.treatment(journey, dscp, per_if, lan.get(journey, {}))
    return out


def control(files: dict[str, str]) -> ControlTreatment:
    p = _parse(files)
    devs = sorted(p.classes)
    if not devs:
        raise ParseError("no HTB tree")
    plain = [r for r in p.mark if r.journey is None]
    untrusted = [i for i in p.ingresses if i != "*"]
    queues: dict[str, Queue] = {}
    queue_of: dict[int, str] = {}
    for d in range(64):
        ids = {_queue_here(p, dev, d) for dev in devs}
        if len(ids) != 1:
            raise ParseError(f"DSCP {d} takes different classes on different WAN devices: {ids}")
        queue_of[d] = ids.pop()
    for cid in set(queue_of.values()):
        shares = tuple((dev, 100.0 * p.classes[dev][cid][0] / p.root_rate[dev]) for dev in devs)
        prio = {p.classes[dev][cid][1] for dev in devs}
        leaves = {p.leaves.get(dev, {}).get(cid, "pfifo") for dev in devs}
        queues[cid] = Queue(strict=prio == {0}, early_drop=bool(leaves & AQM_LEAVES), shares=shares)

    def leaves_as(ingress: str) -> dict[int, int]:
        out = {}
        for d in range(64):
            seen = {_walk(plain, fam, ingress, d) for fam in ("ip", "ip6")}
            if len(seen) != 1:
                raise ParseError(f"{ingress}: DSCP {d} leaves differently for IPv4 and IPv6: {seen}")
            out[d] = seen.pop()
        return out

    bleached = [leaves_as(i) for i in untrusted]
    if any(b != bleached[0] for b in bleached):
        raise ParseError("untrusted LANs are treated differently")
    return ControlTreatment(
        queues=queues,
        queue_of=queue_of,
        trusted=leaves_as("*"),
        untrusted=bleached[0] if bleached else {},
        host_queue=None,
        host={d: _walk(plain, "ip", "", d) for d in range(64)},  # own traffic: no ingress interface
    )


# -- SD-WAN path selection: the qoe_path marks, the ip rules and the per-transport tables ---------------------
#
# A journey's packets get ``meta mark set meta mark & KEEP | VALUE`` in chain ``qoe_path`` (jumped to from a
# ``prerouting`` hook chain for packets not arriving on the interfaces it excludes). ``ip rule``s match
# ``fwmark VALUE/MASK`` in priority order: ``lookup T`` uses table T if it has a route (else the next rule),
# ``unreachable`` drops. So a journey rides the device of the first matching rule's table that has a default
# route, and falls back to the next ones in order; after the last, an ``unreachable`` rule (strict) drops,
# otherwise the main table decides.

PATH_MARK = re.compile(r"meta mark set meta mark & (0x[0-9a-f]+) \| (0x[0-9a-f]+) return comment \"path ([^\"]+)\"$")
PREROUTING = re.compile(r"type filter hook prerouting priority (\S+);")
JUMP_PATH = re.compile(r"^iifname != \{ ([^}]*) \} jump qoe_path$")
ROUTE = re.compile(r"^route add (\S+) .*\btable (\d+)\b.*$")
ROUTE_DEV = re.compile(r"\bdev (\S+)")
IP_RULE = re.compile(r"^rule add priority (\d+) fwmark (0x[0-9a-f]+)/(0x[0-9a-f]+) (?:lookup (\d+)|(unreachable))$")
MARK_BITS = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class RoutingLine:
    """One command of a rendered ``ip -batch`` routing file: a route in a table, or a rule on the packet mark."""

    table: int | None  # the route's table; the table a rule looks up (None: the rule is ``unreachable``)
    route_to: str | None = None  # a route's destination ("default"); None for a rule
    dev: str | None = None  # a route's device
    priority: int | None = None  # a rule's priority; None for a route
    mark: int = 0  # a rule's fwmark value
    mask: int = 0  # the mark bits the rule tests


def routing_lines(text: str, name: str = "routing.batch") -> list[RoutingLine]:
    """The commands of a routing file (blank lines and ``#`` comments skipped); any other line: ParseError."""
    out: list[RoutingLine] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if r := ROUTE.match(line):
            dev = ROUTE_DEV.search(line)
            out.append(RoutingLine(int(r.group(2)), route_to=r.group(1), dev=dev.group(1) if dev else None))
        elif m := IP_RULE.match(line):
            table = int(m.group(4)) if m.group(4) else None
            out.append(RoutingLine(table, priority=int(m.group(1)), mark=int(m.group(2), 16), mask=int(m.group(3), 16)))
        else:
            raise ParseError(f"{name}: unexpected line {line!r}")
    return out


@dataclass(frozen=True, slots=True)
class Path:
    """Where a Linux edge sends one journey of one address family.

    ``order``: the WAN devices in the order the rules try them (the first carries the journey while its
    route is there); ``strict``: after them the journey is dropped, not routed by the main table.
    ``mark``/``mask``: the mark bits the journey gets and which of the packet's mark bits qoectl writes.
    """

    order: tuple[str, ...]
    strict: bool
    mark: int
    mask: int


def _path_marks(nft: str) -> tuple[dict[str, tuple[int, int]], frozenset[str]]:
    """journey key -> (mark value, bits written) from qoe_path; and the ingresses the prerouting hook skips."""
    chains = _chains(nft)
    hook = chains.get("prerouting", [])
    if not hook or not PREROUTING.search(hook[0]):
        raise ParseError("no prerouting hook chain")
    jumps = [JUMP_PATH.match(line) for line in hook[1:]]
    if len(jumps) != 1 or jumps[0] is None:
        raise ParseError(f"prerouting must jump to qoe_path once, for non-WAN ingresses: {hook[1:]}")
    skipped = frozenset(w.strip().strip('"') for w in jumps[0].group(1).split(","))
    marks: dict[str, tuple[int, int]] = {}
    for line in chains.get("qoe_path", []):
        m = PATH_MARK.search(line)
        if not m:
            raise ParseError(f"qoe_path rule that does not set a path mark: {line}")
        keep, value, journey = int(m.group(1), 16), int(m.group(2), 16), journey_key(m.group(3))
        written = MARK_BITS ^ keep | value  # the bits the rule may change
        if value & ~written or (keep | written) != MARK_BITS:
            raise ParseError(f"path mark of {journey} is not a value within the bits it writes: {line}")
        if marks.setdefault(journey, (value, written)) != (value, written):
            raise ParseError(f"journey {journey} gets two path marks")
    return marks, skipped


def steering(files: dict[str, str], family: str = "4") -> dict[str, Path]:
    """journey key -> :class:`Path` for IPv4 (``routing.batch``) or IPv6 (``routing6.batch``); {} without steering."""
    name = "routing.batch" if family == "4" else "routing6.batch"
    if name not in files:
        if "chain qoe_path" in files["nftables.nft"]:
            raise ParseError(f"journeys are marked for paths but there is no {name}")
        return {}
    marks, _ = _path_marks(files["nftables.nft"])
    tables: dict[int, str] = {}
    rules: list[RoutingLine] = []
    for line in routing_lines(files[name], name):
        if line.priority is not None:
            rules.append(line)
        elif line.route_to != "default" or line.dev is None or line.table is None:
            raise ParseError(f"{name}: a route that is not a default route via a device: {line}")
        elif tables.setdefault(line.table, line.dev) != line.dev:
            raise ParseError(f"table {line.table} has two default routes")
    rules.sort(key=lambda r: r.priority or 0)  # stable: rules of one priority in the order they were added
    out: dict[str, Path] = {}
    for journey, (value, written) in marks.items():
        order: list[str] = []
        strict = False
        for rule in rules:
            table = rule.table
            if rule.mask & ~written:
                raise ParseError(f"a rule tests mark bits {rule.mask:#x} the journeys' marks do not own ({written:#x})")
            if value & rule.mask != rule.mark:
                continue
            if table is None:
                strict = True
                break
            if table in tables and tables[table] not in order:
                order.append(tables[table])
        out[journey] = Path(tuple(order), strict, value, written)
    return out


def paths(files: dict[str, str]) -> meaning.DevicePaths:
    """Journey -> the WAN devices its IPv4 ip rules try, in order (:func:`steering`).

    The first device whose table has a route carries the journey. No SLA is measured by the router (``qoectl
    loop`` measures the transports and moves journeys), so ``sla`` is None. A strict journey's order ends in
    ``unreachable``; others fall through to the main table after the last.
    """
    return {
        journey: meaning.PathChoice(frozenset(p.order[:1]), None, p.order)
        for journey, p in steering(files, "4").items()
    }


def path_ingresses_skipped(files: dict[str, str]) -> frozenset[str]:
    """The ingresses whose packets are never marked for a path (the WAN interfaces)."""
    return _path_marks(files["nftables.nft"])[1]
