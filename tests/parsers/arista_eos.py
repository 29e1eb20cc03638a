"""Arista EOS QoS config, read back with ciscoconfparse2.

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

from ciscoconfparse2 import CiscoConfParse

from tests.parsers import ControlTreatment, DeviceTreatment, ParseError, Queue, dscp_value, lan_maps, treatment

JOURNEY = re.compile(r"^QOECTL-J6?-(.+)$")


def _children(obj: object) -> list[tuple[str, object]]:
    return [(c.text.strip(), c) for c in obj.children if c.text.strip() not in ("", "!")]  # type: ignore[attr-defined]


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
    conf = CiscoConfParse(files["qos.cfg"].splitlines(), syntax="ios")
    tc_of_dscp: dict[int, int] = {}
    queue_of_tc: dict[int, int] = {}
    for o in conf.find_objects(r"^qos map "):
        words = o.text.split()
        if words[2] == "dscp":
            tc = int(words[-1])
            for tok in words[3 : words.index("to")]:
                if tc_of_dscp.setdefault(dscp_value(tok), tc) != tc:
                    raise ParseError(f"DSCP {tok} is mapped to two traffic classes")
        elif words[2] == "traffic-class" and words[-2] == "tx-queue":
            queue_of_tc[int(words[3])] = int(words[-1])
    acls: dict[str, tuple[int, list[int | None]]] = {}
    for o in conf.find_objects(r"^(ip|ipv6) access-list "):
        entries: list[int | None] = []
        for text, _ in _children(o):
            words = text.split()
            entries.append(dscp_value(words[words.index("dscp") + 1]) if "dscp" in words else None)
        acls[o.text.split()[-1]] = (6 if o.text.startswith("ipv6") else 4, entries)
    class_maps: dict[str, str] = {}
    for cm in conf.find_objects(r"^class-map type qos "):
        matches = [t for t, _ in _children(cm) if t.startswith("match ")]
        if len(matches) != 1 or matches[0].split()[-1] not in acls:
            raise ParseError(f"{cm.text}: needs exactly one match on a defined ACL, has {matches}")
        class_maps[cm.text.split()[-1]] = matches[0].split()[-1]
    policies: dict[str, dict[str, list[str]]] = {}
    for pm in conf.find_objects(r"^policy-map type quality-of-service "):
        classes = {}
        for text, cls in _children(pm):
            name = text.split()[1]
            if name not in class_maps:
                raise ParseError(f"{pm.text} uses undefined class-map {name}")
            classes[name] = [t for t, _ in _children(cls)]
        policies[pm.text.split()[-1]] = classes
    inputs: dict[str, str] = {}
    wan: dict[str, tuple[float | None, dict[int, list[str]]]] = {}
    for intf in conf.find_objects(r"^interface "):
        link: float | None = None
        queues: dict[int, list[str]] = {}
        for text, child in _children(intf):
            words = text.split()
            if words[:4] == ["service-policy", "type", "qos", "input"]:
                if words[4] not in policies:
                    raise ParseError(f"{intf.text} uses undefined policy-map {words[4]}")
                inputs[intf.text.split()[1]] = words[4]
            elif words[:2] == ["shape", "rate"]:
                if words[-1] != "kbps":
                    raise ParseError(f"{intf.text}: shape rate not in kbps: {text}")
                link = float(words[2])
            elif words[0] == "tx-queue":
                queues[int(words[1])] = [t for t, _ in _children(child)]
        if queues:
            wan[intf.text.split()[1]] = (link, queues)
    return _Parsed(tc_of_dscp, queue_of_tc, acls, class_maps, policies, inputs, wan)


def _tx_queue(p: _Parsed, dscp: int) -> int:
    if dscp not in p.tc_of_dscp or p.tc_of_dscp[dscp] not in p.queue_of_tc:
        raise ParseError(f"DSCP {dscp} reaches no tx-queue")
    return p.queue_of_tc[p.tc_of_dscp[dscp]]


def _queue(p: _Parsed, queue: int) -> tuple[bool, bool, dict[str, float | None]]:
    """(strict, early drop, share of each WAN link) of one tx-queue."""
    strict_seen, red_seen = set(), set()
    shares: dict[str, float | None] = {}
    for ifname, (link, queues) in p.wan.items():
        strict_q = {q: lines for q, lines in queues.items() if "no priority" not in lines}
        rr = {q: lines for q, lines in queues.items() if "no priority" in lines}
        if strict_q and rr and min(strict_q) < max(rr):
            raise ParseError(f"{ifname}: a strict tx-queue sits below a round-robin one")
        if queue not in queues:
            raise ParseError(f"{ifname}: tx-queue {queue} is used but not configured")
        caps = {q: _shape_kbps(ifname, q, lines) for q, lines in strict_q.items()}
        share: float | None = None
        if link:
            if queue in strict_q:
                share = 100.0 * caps[queue] / link
            else:
                pct = next(int(s.split()[-1]) for s in queues[queue] if s.startswith("bandwidth percent "))
                share = pct * (link - sum(caps.values())) / link
        shares[ifname] = share
        strict_seen.add(queue in strict_q)
        red_seen.add(any(s.startswith("random-detect") for s in queues[queue]))
    if len(strict_seen) > 1 or len(red_seen) > 1:
        raise ParseError(f"tx-queue {queue} is scheduled differently on different WAN interfaces")
    return bool(strict_seen and strict_seen.pop()), bool(red_seen and red_seen.pop()), shares


def _sets(lines: list[str], dscp: int) -> int:
    return next((dscp_value(line.split()[-1]) for line in lines if line.startswith("set dscp ")), dscp)


def _ingress(p: _Parsed, policy: str, version: int, dscp: int, own: str | None) -> int:
    """The DSCP a packet leaves an input policy with (``own``: the journey class the packet belongs to)."""
    for cls, lines in p.policies[policy].items():
        acl_version, entries = p.acls[p.class_maps[cls]]
        if acl_version != version:
            continue
        if JOURNEY.match(cls):
            if cls == own:
                return _sets(lines, dscp)
            continue  # another journey's traffic
        if any(d is None or d == dscp for d in entries):
            return _sets(lines, dscp)
    return dscp


def _bleaches(p: _Parsed, policy: str) -> bool:
    return any(
        not JOURNEY.match(cls) and any(line.startswith("set dscp ") for line in lines)
        for cls, lines in p.policies[policy].items()
    )


def parse(files: dict[str, str]) -> DeviceTreatment:
    p = _parse(files)
    marks: dict[str, set[int]] = {}
    lan: dict[str, dict[str, set[int]]] = {}
    for ifname, policy in sorted(p.inputs.items()):
        for cls, lines in p.policies[policy].items():
            m = JOURNEY.match(cls)
            if not m:
                continue
            sets = dict(line.split(" ", 2)[1:] for line in lines if line.startswith("set "))
            dscp = dscp_value(sets["dscp"])
            if int(sets["traffic-class"]) != p.tc_of_dscp.get(dscp):
                raise ParseError(
                    f"{policy} {cls}: set traffic-class {sets['traffic-class']} but DSCP {dscp} maps elsewhere"
                )
            marks.setdefault(m.group(1), set()).add(dscp)
            version, entries = p.acls[p.class_maps[cls]]
            for arrives in entries:
                out = _ingress(p, policy, version, 0 if arrives is None else arrives, cls)
                lan.setdefault(m.group(1), {}).setdefault(ifname, set()).add(out)
    out: DeviceTreatment = {}
    for journey, dscps in sorted(marks.items()):
        if len(dscps) != 1:
            raise ParseError(f"journey {journey} is marked with several DSCPs: {sorted(dscps)}")
        dscp = dscps.pop()
        strict, _, shares = _queue(p, _tx_queue(p, dscp))
        per_if = {ifname: (strict, share) for ifname, share in shares.items()}
        out[journey] = treatment(journey, dscp, per_if, lan.get(journey, {}))
    return out


def control(files: dict[str, str]) -> ControlTreatment:
    p = _parse(files)
    if not p.wan:
        raise ParseError("no tx-queues on any interface")
    queue_of = {d: str(_tx_queue(p, d)) for d in range(64)}
    queues = {}
    for q in set(queue_of.values()):
        strict, red, shares = _queue(p, int(q))
        queues[q] = Queue(strict=strict, early_drop=red, shares=tuple(sorted(shares.items())))
    maps: dict[bool, list[dict[int, int]]] = {True: [], False: []}
    for policy in sorted(set(p.inputs.values())):
        for version in (4, 6):
            maps[_bleaches(p, policy)].append({d: _ingress(p, policy, version, d, None) for d in range(64)})
    trusted, untrusted = lan_maps(maps)
    return ControlTreatment(
        queues=queues,
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
