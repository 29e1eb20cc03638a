"""Cisco IOS-XE MQC, read back with ciscoconfparse2.

Chain: marking policy (attached ``service-policy input``) ``class QOECTL-J-X``
-> ``set dscp`` -> the DSCP class-map (``match dscp``) that holds the value, or
``class-default`` -> on each interface with ``service-policy output``: the
queuing policy (through the shaper's ``class-default`` when there is one) ->
``priority`` (strict, share = ``police cir`` / shaped rate) or ``bandwidth
remaining percent`` (share of what the strict classes leave, converted back to
percent of the link). Without a shaper the text does not state the link rate,
so the share is ``None``.
"""

from __future__ import annotations

import re

from ciscoconfparse2 import CiscoConfParse

from tests.parsers import DeviceTreatment, ParseError, dscp_value, treatment

JOURNEY_CLASS = "QOECTL-J-"


def _children(obj: object) -> list[tuple[str, object]]:
    return [(c.text.strip(), c) for c in obj.children if c.text.strip() not in ("", "!")]  # type: ignore[attr-defined]


def parse(files: dict[str, str]) -> DeviceTreatment:
    conf = CiscoConfParse(files["qos.cfg"].splitlines(), syntax="ios")
    policies: dict[str, dict[str, list[str]]] = {}
    for pm in conf.find_objects(r"^policy-map "):
        classes: dict[str, list[str]] = {}
        for text, cls in _children(pm):
            if text.startswith("class "):
                classes[text.split()[1]] = [t for t, _ in _children(cls)]
        policies[pm.text.split()[1]] = classes
    class_maps = {cm.text.split()[-1]: [t for t, _ in _children(cm)] for cm in conf.find_objects(r"^class-map ")}
    acls = {a.text.split()[-1] for a in conf.find_objects(r"^(ip|ipv6) access-list ")}
    queue_class: dict[int, str] = {}
    for name, lines in class_maps.items():
        for line in lines:
            if line.startswith("match access-group name ") and line.split()[-1] not in acls:
                raise ParseError(f"class-map {name} references undefined ACL {line.split()[-1]}")
            if line.startswith("match dscp "):
                for tok in line.split()[2:]:
                    queue_class.setdefault(dscp_value(tok), name)
    inputs: set[str] = set()
    outputs: dict[str, str] = {}
    for intf in conf.find_objects(r"^interface "):
        for text, _ in _children(intf):
            words = text.split()
            if words[:2] == ["service-policy", "input"]:
                inputs.add(words[2])
            elif words[:2] == ["service-policy", "output"]:
                outputs[intf.text.split()[1]] = words[2]
    for p in inputs | set(outputs.values()):
        if p not in policies:
            raise ParseError(f"service-policy {p} is not defined")
    marks: dict[str, set[int]] = {}
    for p in sorted(inputs):
        for cls, lines in policies[p].items():
            if cls != "class-default" and cls not in class_maps:
                raise ParseError(f"policy-map {p} uses undefined class-map {cls}")
            for line in lines:
                if cls.startswith(JOURNEY_CLASS) and line.startswith("set dscp "):
                    marks.setdefault(cls[len(JOURNEY_CLASS) :], set()).add(dscp_value(line.split()[-1]))
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
    out: DeviceTreatment = {}
    for journey, dscps in sorted(marks.items()):
        if len(dscps) != 1:
            raise ParseError(f"journey {journey} is marked with several DSCPs: {sorted(dscps)}")
        dscp = dscps.pop()
        cls = queue_class.get(dscp, "class-default")
        per_if: dict[str, tuple[bool, float | None]] = {}
        for ifname, (link, queuing) in wan.items():
            cls_here = cls if cls in queuing else "class-default"
            lines = queuing[cls_here]
            police = {c: _police_kbps(ls) for c, ls in queuing.items() if any(s.startswith("priority") for s in ls)}
            strict = cls_here in police
            share: float | None = None
            if link:
                if strict:
                    share = 100.0 * police[cls_here] / link
                else:
                    pct = next((int(s.split()[-1]) for s in lines if s.startswith("bandwidth remaining percent ")), 0)
                    share = pct * (link - sum(police.values())) / link
            per_if[ifname] = (strict, share)
        out[journey] = treatment(journey, dscp, per_if)
    return out


def _police_kbps(lines: list[str]) -> float:
    for line in lines:
        m = re.match(r"police cir (\d+)", line)
        if m:
            return int(m.group(1)) / 1000.0
    raise ParseError("a priority class without a policer: its share of the link is unbounded")
