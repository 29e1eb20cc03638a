"""Arista EOS QoS config: the syntax (:mod:`controller.configtext.cli_tree`) and the meaning.

Chain: LAN ``service-policy type qos input`` policy -> ``class QOECTL-J-X`` /
``QOECTL-J6-X`` -> ``set dscp`` (and ``set traffic-class``, which must equal
what ``qos map dscp`` gives for that DSCP) -> ``qos map traffic-class N to
tx-queue Q`` -> on each WAN interface, ``tx-queue Q``: strict unless ``no
priority`` (the EOS default is strict). Strict share = the queue's ``shape
rate`` (kbps) / the interface ``shape rate``; round-robin share = ``bandwidth
percent`` of what the strict queues leave, converted back to percent of the
link. Without an interface shaper the text does not state the link rate, so
the share is ``None``.

LAN ingresses: a policy's classes are tried in order, the first that matches
acts. A class matches a packet of its ACL's family when an entry matches (an
entry's ``dscp X`` tests the DSCP the packet arrives with); a journey's packet
matches its own class and no other journey's. A policy with a class outside the
journeys' that sets a DSCP bleaches: its interfaces are untrusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from controller.configtext import meaning
from controller.configtext.cli_tree import Node, journey_classes, set_dscp
from controller.configtext.cli_tree import parse as tree
from controller.configtext.meaning import ControlTreatment, DeviceTreatment, ParseError, Scheduling, dscp_value

__all__ = ["control", "parse", "tree"]

JOURNEY = re.compile(r"^QOECTL-J6?-(.+)$")


def _top(nodes: list[Node], prefix: str) -> list[Node]:
    return [n for n in nodes if n.line.startswith(prefix)]


@dataclass(frozen=True, slots=True)
class _Parsed:
    tc_of_dscp: dict[int, int]
    queue_of_tc: dict[int, int]
    acls: dict[str, tuple[int, list[int | None]]]  # ACL -> (IP version, per entry the DSCP it tests)
    class_maps: dict[str, str]  # class-map -> its ACL
    policies: dict[str, dict[str, list[str]]]  # policy-map -> class (in order) -> lines
    inputs: dict[str, str]  # interface -> input policy
    wan: dict[str, tuple[float | None, dict[int, list[str]]]]  # interface -> (link kbps, tx-queue -> lines)


def _parse(files: dict[str, str]) -> _Parsed:
    conf = tree(files["qos.cfg"])
    tc_of_dscp: dict[int, int] = {}
    queue_of_tc: dict[int, int] = {}
    for o in _top(conf, "qos map "):
        words = o.words
        if words[2] == "dscp":
            tc = int(words[-1])
            for tok in words[3 : words.index("to")]:
                if tc_of_dscp.setdefault(dscp_value(tok), tc) != tc:
                    raise ParseError(f"DSCP {tok} is mapped to two traffic classes")
        elif words[2] == "traffic-class" and words[-2] == "tx-queue":
            queue_of_tc[int(words[3])] = int(words[-1])
    acls: dict[str, tuple[int, list[int | None]]] = {}
    for o in _top(conf, "ip access-list ") + _top(conf, "ipv6 access-list "):
        entries: list[int | None] = []
        for words in (c.words for c in o.children):
            entries.append(dscp_value(words[words.index("dscp") + 1]) if "dscp" in words else None)
        acls[o.words[-1]] = (6 if o.line.startswith("ipv6") else 4, entries)
    class_maps: dict[str, str] = {}
    for cm in _top(conf, "class-map type qos "):
        matches = [t for t in cm.texts() if t.startswith("match ")]
        if len(matches) != 1 or matches[0].split()[-1] not in acls:
            raise ParseError(f"{cm.line}: needs exactly one match on a defined ACL, has {matches}")
        class_maps[cm.words[-1]] = matches[0].split()[-1]
    policies: dict[str, dict[str, list[str]]] = {}
    for pm in _top(conf, "policy-map type quality-of-service "):
        classes = {}
        for cls in pm.children:
            name = cls.words[1]
            if name not in class_maps:
                raise ParseError(f"{pm.line} uses undefined class-map {name}")
            classes[name] = cls.texts()
        policies[pm.words[-1]] = classes
    inputs: dict[str, str] = {}
    wan: dict[str, tuple[float | None, dict[int, list[str]]]] = {}
    for intf in _top(conf, "interface "):
        link: float | None = None
        tx: dict[int, list[str]] = {}
        for child in intf.children:
            words = child.words
            if words[:4] == ["service-policy", "type", "qos", "input"]:
                if words[4] not in policies:
                    raise ParseError(f"{intf.line} uses undefined policy-map {words[4]}")
                inputs[intf.words[1]] = words[4]
            elif words[:2] == ["shape", "rate"]:
                if words[-1] != "kbps":
                    raise ParseError(f"{intf.line}: shape rate not in kbps: {child.line}")
                link = float(words[2])
            elif words[0] == "tx-queue":
                tx[int(words[1])] = child.texts()
        if tx:
            wan[intf.words[1]] = (link, tx)
    return _Parsed(tc_of_dscp, queue_of_tc, acls, class_maps, policies, inputs, wan)


def _tx_queue(p: _Parsed, dscp: int) -> int:
    if dscp not in p.tc_of_dscp or p.tc_of_dscp[dscp] not in p.queue_of_tc:
        raise ParseError(f"DSCP {dscp} reaches no tx-queue")
    return p.queue_of_tc[p.tc_of_dscp[dscp]]


def _queue(p: _Parsed, queue: int) -> Scheduling:
    """(strict, early drop, share of each WAN link) of one tx-queue."""
    here: dict[str, tuple[bool, bool, float | None]] = {}
    for ifname, (link, tx) in p.wan.items():
        strict_q = {q: lines for q, lines in tx.items() if "no priority" not in lines}
        rr = {q: lines for q, lines in tx.items() if "no priority" in lines}
        if strict_q and rr and min(strict_q) < max(rr):
            raise ParseError(f"{ifname}: a strict tx-queue sits below a round-robin one")
        if queue not in tx:
            raise ParseError(f"{ifname}: tx-queue {queue} is used but not configured")
        caps = {q: _shape_kbps(ifname, q, lines) for q, lines in strict_q.items()}
        pct = next((int(s.split()[-1]) for s in tx[queue] if s.startswith("bandwidth percent ")), 0)
        share = meaning.link_share(link, caps.get(queue), pct, sum(caps.values()))
        here[ifname] = (queue in strict_q, any(s.startswith("random-detect") for s in tx[queue]), share)
    return meaning.queue_scheduling(here, f"tx-queue {queue}")


def _ingress(p: _Parsed, policy: str, version: int, dscp: int, own: str | None) -> int:
    """The DSCP a packet leaves an input policy with (``own``: the journey class the packet belongs to)."""
    for cls, lines in p.policies[policy].items():
        acl_version, entries = p.acls[p.class_maps[cls]]
        if acl_version != version:
            continue
        if JOURNEY.match(cls):
            if cls == own:
                return set_dscp(lines, dscp)
            continue  # another journey's traffic
        if any(d is None or d == dscp for d in entries):
            return set_dscp(lines, dscp)
    return dscp


def _bleaches(p: _Parsed, policy: str) -> bool:
    return any(
        not JOURNEY.match(cls) and any(line.startswith("set dscp ") for line in lines)
        for cls, lines in p.policies[policy].items()
    )


def _journey(cls: str) -> str | None:
    m = JOURNEY.match(cls)
    return m.group(1) if m else None


def parse(files: dict[str, str]) -> DeviceTreatment:
    p = _parse(files)
    marks: dict[str, set[int]] = {}
    lan: dict[str, dict[str, set[int]]] = {}
    for ifname, policy, cls, key, lines in journey_classes(p.inputs, p.policies, _journey):
        sets = dict(line.split(" ", 2)[1:] for line in lines if line.startswith("set "))
        dscp = dscp_value(sets["dscp"])
        if int(sets["traffic-class"]) != p.tc_of_dscp.get(dscp):
            raise ParseError(f"{policy} {cls}: set traffic-class {sets['traffic-class']}, DSCP {dscp} maps elsewhere")
        marks.setdefault(key, set()).add(dscp)
        version, entries = p.acls[p.class_maps[cls]]
        for arrives in entries:
            out = _ingress(p, policy, version, 0 if arrives is None else arrives, cls)
            lan.setdefault(key, {}).setdefault(ifname, set()).add(out)
    return meaning.journeys(marks, lan, lambda dscp: _queue(p, _tx_queue(p, dscp)))


def control(files: dict[str, str]) -> ControlTreatment:
    p = _parse(files)
    if not p.wan:
        raise ParseError("no tx-queues on any interface")
    queue_of = {d: str(_tx_queue(p, d)) for d in range(64)}
    maps: dict[bool, list[dict[int, int]]] = {True: [], False: []}
    for policy in sorted(set(p.inputs.values())):
        for version in (4, 6):
            maps[_bleaches(p, policy)].append({d: _ingress(p, policy, version, d, None) for d in range(64)})
    trusted, untrusted = meaning.lan_maps(maps)
    return ControlTreatment(
        queues=meaning.queues(set(queue_of.values()), lambda q: _queue(p, int(q))),
        queue_of=queue_of,
        trusted=trusted,
        untrusted=untrusted,
        host_queue=None,
        host={d: d for d in range(64)},  # EOS rewrites no DSCP on the way out (no egress marking policy here)
    )


def _shape_kbps(ifname: str, queue: int, lines: list[str]) -> float:
    for line in lines:
        words = line.split()
        if words[:2] == ["shape", "rate"] and len(words) == 3:
            return float(words[2])
    raise ParseError(f"{ifname} tx-queue {queue} is strict without a shape rate: its share is unbounded")
