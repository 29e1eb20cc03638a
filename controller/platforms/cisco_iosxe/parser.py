"""Cisco IOS-XE MQC: the syntax (:mod:`controller.configtext.cli_tree`) and the meaning of the QoS config.

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

from controller.configtext import meaning
from controller.configtext.cli_tree import Node, journey_classes, set_dscp
from controller.configtext.cli_tree import parse as tree
from controller.configtext.meaning import ControlTreatment, DeviceTreatment, ParseError, Scheduling, dscp_value

__all__ = ["control", "parse", "tree"]

JOURNEY_CLASS = "QOECTL-J-"


def _top(nodes: list[Node], pattern: str) -> list[Node]:
    return [n for n in nodes if re.match(pattern, n.line)]


@dataclass(frozen=True, slots=True)
class _Parsed:
    policies: dict[str, dict[str, list[str]]]  # policy-map -> class (in order) -> lines
    class_maps: dict[str, list[str]]
    acl_dscps: dict[str, list[int | None]]  # ACL -> per entry: the DSCP it tests (None: any)
    queue_class: dict[int, str]  # DSCP -> class-map that matches it
    inputs: dict[str, str]  # interface -> input policy
    wan: dict[str, tuple[float | None, dict[str, list[str]]]]  # interface -> (link kbps, queuing classes)


def _parse(files: dict[str, str]) -> _Parsed:
    conf = tree(files["qos.cfg"])
    policies: dict[str, dict[str, list[str]]] = {}
    for pm in _top(conf, r"policy-map "):
        policies[pm.words[1]] = {cls.words[1]: cls.texts() for cls in pm.child("class")}
    class_maps = {cm.words[-1]: cm.texts() for cm in _top(conf, r"class-map ")}
    acl_dscps: dict[str, list[int | None]] = {}
    for a in _top(conf, r"(ip|ipv6) access-list "):
        entries: list[int | None] = []
        for words in (c.words for c in a.children):
            entries.append(dscp_value(words[words.index("dscp") + 1]) if "dscp" in words else None)
        acl_dscps[a.words[-1]] = entries
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
    for intf in _top(conf, r"interface "):
        for words in (c.words for c in intf.children):
            if words[:2] == ["service-policy", "input"]:
                inputs[intf.words[1]] = words[2]
            elif words[:2] == ["service-policy", "output"]:
                outputs[intf.words[1]] = words[2]
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


def _ingress(p: _Parsed, policy: str, dscp: int, journey_class: str | None) -> int:
    """The DSCP a packet leaves an input policy with: the first class that matches it acts."""
    for cls, lines in p.policies[policy].items():
        if cls == "class-default":
            return set_dscp(lines, dscp)
        if cls.startswith(JOURNEY_CLASS):
            if cls == journey_class:
                return set_dscp(lines, dscp)
            continue  # another journey's traffic
        if any(line.startswith("match any") for line in p.class_maps[cls]) or any(
            dscp in [dscp_value(t) for t in line.split()[2:]]
            for line in p.class_maps[cls]
            if line.startswith("match dscp ")
        ):
            return set_dscp(lines, dscp)
    return dscp


def _egress(p: _Parsed, dscp: int) -> int:
    """The DSCP after the WAN queuing policies (a ``set dscp`` there would rewrite it on the way out)."""
    seen = set()
    for _, queuing in p.wan.values():
        cls = p.queue_class.get(dscp, "class-default")
        seen.add(set_dscp(queuing.get(cls if cls in queuing else "class-default", []), dscp))
    if len(seen) > 1:
        raise ParseError(f"DSCP {dscp} leaves different WAN interfaces differently: {seen}")
    return seen.pop() if seen else dscp


def _bleaches(p: _Parsed, policy: str) -> bool:
    return any(line.startswith("set dscp ") for line in p.policies[policy].get("class-default", []))


def _shares(p: _Parsed, cls: str) -> Scheduling:
    """(strict, early drop, share of each WAN link) of one queuing class (class-default when not listed)."""
    here: dict[str, tuple[bool, bool, float | None]] = {}
    for ifname, (link, queuing) in p.wan.items():
        name = cls if cls in queuing else "class-default"
        lines = queuing.get(name, [])
        police = {c: _police_kbps(ls) for c, ls in queuing.items() if any(s.startswith("priority") for s in ls)}
        pct = next((int(s.split()[-1]) for s in lines if s.startswith("bandwidth remaining percent ")), 0)
        share = meaning.link_share(link, police.get(name), pct, sum(police.values()))
        here[ifname] = (name in police, any(s.startswith("random-detect") for s in lines), share)
    return meaning.queue_scheduling(here, f"class {cls}")


def _journey(cls: str) -> str | None:
    return cls[len(JOURNEY_CLASS) :] if cls.startswith(JOURNEY_CLASS) else None


def parse(files: dict[str, str]) -> DeviceTreatment:
    p = _parse(files)
    marks: dict[str, set[int]] = {}
    lan: dict[str, dict[str, set[int]]] = {}
    for ifname, policy, cls, key, lines in journey_classes(p.inputs, p.policies, _journey):
        for line in lines:
            if line.startswith("set dscp "):
                marks.setdefault(key, set()).add(dscp_value(line.split()[-1]))
        for arrives in _acl_entries(p, cls):
            out_dscp = _egress(p, _ingress(p, policy, 0 if arrives is None else arrives, cls))
            lan.setdefault(key, {}).setdefault(ifname, set()).add(out_dscp)
    return meaning.journeys(marks, lan, lambda dscp: _shares(p, p.queue_class.get(dscp, "class-default")))


def control(files: dict[str, str]) -> ControlTreatment:
    p = _parse(files)
    if not p.wan:
        raise ParseError("no queuing policy on any interface")
    queued = set().union(*(set(q) for _, q in p.wan.values()))
    queue_of = {d: (c if (c := p.queue_class.get(d)) in queued else "class-default") for d in range(64)}
    maps: dict[bool, list[dict[int, int]]] = {True: [], False: []}
    for policy in sorted(set(p.inputs.values())):
        maps[_bleaches(p, policy)].append({d: _egress(p, _ingress(p, policy, d, None)) for d in range(64)})
    trusted, untrusted = meaning.lan_maps(maps)
    return ControlTreatment(
        queues=meaning.queues(set(queue_of.values()), lambda cls: _shares(p, cls)),
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
