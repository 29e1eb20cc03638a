"""Cisco IOS-XE MQC, read back with ciscoconfparse2.

Chain: marking policy (attached ``service-policy input``) ``class QOECTL-J-X``
-> ``set dscp`` -> the DSCP class-map (``match dscp``) that holds the value, or
``class-default`` -> on each interface with ``service-policy output``: the
queuing policy (through the shaper's ``class-default`` when there is one) ->
``priority`` (strict, share = ``police cir`` / shaped rate) or ``bandwidth
remaining percent`` (share of what the strict classes leave, converted back to
percent of the link). Without a shaper the text does not state the link rate,
so the share is ``None``.

LAN ingresses: an input policy's classes are tried in order and the first that
matches acts (MQC), ``class-default`` last. A journey's packet matches its own
class when one of the class's ACL entries matches it (an entry's ``dscp X``
tests the DSCP it arrives with) and no other journey's class. An input policy
whose ``class-default`` sets a DSCP bleaches: its interfaces are untrusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ciscoconfparse2 import CiscoConfParse

from tests.parsers import ControlTreatment, DeviceTreatment, ParseError, Queue, dscp_value, lan_maps, treatment

JOURNEY_CLASS = "QOECTL-J-"


def _children(obj: object) -> list[tuple[str, object]]:
    return [(c.text.strip(), c) for c in obj.children if c.text.strip() not in ("", "!")]  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class _Parsed:
    policies: dict[str, dict[str, list[str]]]  # policy-map -> class (in order) -> lines
    class_maps: dict[str, list[str]]
    acl_dscps: dict[str, list[int | None]]  # ACL -> per entry: the DSCP it tests (None: any)
    queue_class: dict[int, str]  # DSCP -> class-map that matches it
    inputs: dict[str, str]  # interface -> input policy
    wan: dict[str, tuple[float | None, dict[str, list[str]]]]  # interface -> (link kbps, queuing classes)


def _parse(files: dict[str, str]) -> _Parsed:
    conf = CiscoConfParse(files["qos.cfg"].splitlines(), syntax="ios")
    policies: dict[str, dict[str, list[str]]] = {}
    for pm in conf.find_objects(r"^policy-map "):
        classes: dict[str, list[str]] = {}
        for text, cls in _children(pm):
            if text.startswith("class "):
                classes[text.split()[1]] = [t for t, _ in _children(cls)]
        policies[pm.text.split()[1]] = classes
    class_maps = {cm.text.split()[-1]: [t for t, _ in _children(cm)] for cm in conf.find_objects(r"^class-map ")}
    acl_dscps: dict[str, list[int | None]] = {}
    for a in conf.find_objects(r"^(ip|ipv6) access-list "):
        entries: list[int | None] = []
        for text, _ in _children(a):
            words = text.split()
            entries.append(dscp_value(words[words.index("dscp") + 1]) if "dscp" in words else None)
        acl_dscps[a.text.split()[-1]] = entries
    queue_class: dict[int, str] = {}
    for name, lines in class_maps.items():
        for line in lines:
            if line.startswith("match access-group name ") and line.split()[-1] not in acl_dscps:
                raise ParseError(f"class-map {name} references undefined ACL {line.split()[-1]}")
            if line.startswith("match dscp "):
                for tok in line.split()[2:]:
                    queue_class.setdefault(dscp_value(tok), name)
    inputs: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for intf in conf.find_objects(r"^interface "):
        for text, _ in _children(intf):
            words = text.split()
            if words[:2] == ["service-policy", "input"]:
                inputs[intf.text.split()[1]] = words[2]
            elif words[:2] == ["service-policy", "output"]:
                outputs[intf.text.split()[1]] = words[2]
    for p in set(inputs.values()) | set(outputs.values()):
        if p not in policies:
            raise ParseError(f"service-policy {p} is not defined")
    for p in set(inputs.values()):
        for cls in policies[p]:
            if cls != "class-default" and cls not in class_maps:
                raise ParseError(f"policy-map {p} uses undefined class-map {cls}")
    # Per WAN interface: link rate (kbps, from the shaper) and the queuing policy's classes.
    wan: dict[str, tuple[float | None, dict[str, list[str]]]] = {}
    for ifname, p in outputs.items():
        link: float | None = None
        queuing = policies[p]
        default = queuing.get("class-default", [])
        shape = next((line for line in default if line.startswith("shape average ")), None)
        child = next((line for line in default if line.startswith("service-policy ")), None)
        if shape and child:
            link = int(shape.split()[-1]) / 1000.0
            if child.split()[-1] not in policies:
                raise ParseError(f"shaper {p} nests undefined policy {child.split()[-1]}")
            queuing = policies[child.split()[-1]]
        wan[ifname] = (link, queuing)
    return _Parsed(policies, class_maps, acl_dscps, queue_class, inputs, wan)


def _acl_entries(p: _Parsed, class_map: str) -> list[int | None]:
    return [
        d
        for line in p.class_maps[class_map]
        if line.startswith("match access-group name ")
        for d in p.acl_dscps[line.split()[-1]]
    ]


def _sets(lines: list[str], dscp: int) -> int:
    return next((dscp_value(line.split()[-1]) for line in lines if line.startswith("set dscp ")), dscp)


def _ingress(p: _Parsed, policy: str, dscp: int, journey_class: str | None) -> int:
    """The DSCP a packet leaves an input policy with: the first class that matches it acts."""
    for cls, lines in p.policies[policy].items():
        if cls == "class-default":
            return _sets(lines, dscp)
        if cls.startswith(JOURNEY_CLASS):
            if cls == journey_class:
                return _sets(lines, dscp)
            continue  # another journey's traffic
        if any(line.startswith("match any") for line in p.class_maps[cls]) or any(
            dscp in [dscp_value(t) for t in line.split()[2:]]
            for line in p.class_maps[cls]
            if line.startswith("match dscp ")
        ):
            return _sets(lines, dscp)
    return dscp


def _egress(p: _Parsed, dscp: int) -> int:
    """The DSCP after the WAN queuing policies (a ``set dscp`` there would rewrite it on the way out)."""
    seen = set()
    for _, queuing in p.wan.values():
        cls = p.queue_class.get(dscp, "class-default")
        seen.add(_sets(queuing.get(cls if cls in queuing else "class-default", []), dscp))
    if len(seen) > 1:
        raise ParseError(f"DSCP {dscp} leaves different WAN interfaces differently: {seen}")
    return seen.pop() if seen else dscp


def _bleaches(p: _Parsed, policy: str) -> bool:
    return any(line.startswith("set dscp ") for line in p.policies[policy].get("class-default", []))


def _shares(p: _Parsed, cls: str) -> tuple[bool, bool, dict[str, float | None]]:
    """(strict, early drop, share of each WAN link) of one queuing class (class-default when not listed)."""
    strict_seen, red_seen = set(), set()
    shares: dict[str, float | None] = {}
    for ifname, (link, queuing) in p.wan.items():
        here = cls if cls in queuing else "class-default"
        lines = queuing.get(here, [])
        police = {c: _police_kbps(ls) for c, ls in queuing.items() if any(s.startswith("priority") for s in ls)}
        strict = here in police
        strict_seen.add(strict)
        red_seen.add(any(s.startswith("random-detect") for s in lines))
        share: float | None = None
        if link:
            if strict:
                share = 100.0 * police[here] / link
            else:
                pct = next((int(s.split()[-1]) for s in lines if s.startswith("bandwidth remaining percent ")), 0)
                share = pct * (link - sum(police.values())) / link
        shares[ifname] = share
    if len(strict_seen) > 1 or len(red_seen) > 1:
        raise ParseError(f"class {cls} is queued differently on different WAN interfaces")
    return bool(strict_seen and strict_seen.pop()), bool(red_seen and red_seen.pop()), shares


def parse(files: dict[str, str]) -> DeviceTreatment:
    p = _parse(files)
    marks: dict[str, set[int]] = {}
    lan: dict[str, dict[str, set[int]]] = {}
    for ifname, policy in sorted(p.inputs.items()):
        for cls, lines in p.policies[policy].items():
            if not cls.startswith(JOURNEY_CLASS):
                continue
            key = cls[len(JOURNEY_CLASS) :]
            for line in lines:
                if line.startswith("set dscp "):
                    marks.setdefault(key, set()).add(dscp_value(line.split()[-1]))
            for arrives in _acl_entries(p, cls):
                out_dscp = _egress(p, _ingress(p, policy, 0 if arrives is None else arrives, cls))
                lan.setdefault(key, {}).setdefault(ifname, set()).add(out_dscp)
    out: DeviceTreatment = {}
    for journey, dscps in sorted(marks.items()):
        if len(dscps) != 1:
            raise ParseError(f"journey {journey} is marked with several DSCPs: {sorted(dscps)}")
        dscp = dscps.pop()
        strict, _, shares = _shares(p, p.queue_class.get(dscp, "class-default"))
        per_if = {ifname: (strict, share) for ifname, share in shares.items()}
        out[journey] = treatment(journey, dscp, per_if, lan.get(journey, {}))
    return out


def control(files: dict[str, str]) -> ControlTreatment:
    p = _parse(files)
    if not p.wan:
        raise ParseError("no queuing policy on any interface")
    queued = set().union(*(set(q) for _, q in p.wan.values()))
    queue_of = {d: (c if (c := p.queue_class.get(d)) in queued else "class-default") for d in range(64)}
    queues = {}
    for cls in set(queue_of.values()):
        strict, red, shares = _shares(p, cls)
        queues[cls] = Queue(strict=strict, early_drop=red, shares=tuple(sorted(shares.items())))
    maps: dict[bool, list[dict[int, int]]] = {True: [], False: []}
    for policy in sorted(set(p.inputs.values())):
        maps[_bleaches(p, policy)].append({d: _egress(p, _ingress(p, policy, d, None)) for d in range(64)})
    trusted, untrusted = lan_maps(maps)
    return ControlTreatment(
        queues=queues,
        queue_of=queue_of,
        trusted=trusted,
        untrusted=untrusted,
        host_queue=None,
        host={d: _egress(p, d) for d in range(64)},
    )


def _police_kbps(lines: list[str]) -> float:
    for line in lines:
        m = re.match(r"police cir (\d+)", line)
        if m:
            return int(m.group(1)) / 1000.0
    raise ParseError("a priority class without a policer: its share of the link is unbounded")
