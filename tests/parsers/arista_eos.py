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
"""

from __future__ import annotations

import re

from ciscoconfparse2 import CiscoConfParse

from tests.parsers import DeviceTreatment, ParseError, dscp_value, treatment

JOURNEY = re.compile(r"^QOECTL-J6?-(.+)$")


def _children(obj: object) -> list[tuple[str, object]]:
    return [(c.text.strip(), c) for c in obj.children if c.text.strip() not in ("", "!")]  # type: ignore[attr-defined]


def parse(files: dict[str, str]) -> DeviceTreatment:
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
    acls = {o.text.split()[-1] for o in conf.find_objects(r"^(ip|ipv6) access-list ")}
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
    inputs: set[str] = set()
    wan: dict[str, tuple[float | None, dict[int, list[str]]]] = {}
    for intf in conf.find_objects(r"^interface "):
        link: float | None = None
        queues: dict[int, list[str]] = {}
        for text, child in _children(intf):
            words = text.split()
            if words[:4] == ["service-policy", "type", "qos", "input"]:
                if words[4] not in policies:
                    raise ParseError(f"{intf.text} uses undefined policy-map {words[4]}")
                inputs.add(words[4])
            elif words[:2] == ["shape", "rate"]:
                if words[-1] != "kbps":
                    raise ParseError(f"{intf.text}: shape rate not in kbps: {text}")
                link = float(words[2])
            elif words[0] == "tx-queue":
                queues[int(words[1])] = [t for t, _ in _children(child)]
        if queues:
            wan[intf.text.split()[1]] = (link, queues)
    marks: dict[str, set[int]] = {}
    for p in sorted(inputs):
        for cls, lines in policies[p].items():
            m = JOURNEY.match(cls)
            if not m:
                continue
            sets = dict(line.split(" ", 2)[1:] for line in lines if line.startswith("set "))
            dscp = dscp_value(sets["dscp"])
            if int(sets["traffic-class"]) != tc_of_dscp.get(dscp):
                raise ParseError(f"{p} {cls}: set traffic-class {sets['traffic-class']} but DSCP {dscp} maps elsewhere")
            marks.setdefault(m.group(1), set()).add(dscp)
    out: DeviceTreatment = {}
    for journey, dscps in sorted(marks.items()):
        if len(dscps) != 1:
            raise ParseError(f"journey {journey} is marked with several DSCPs: {sorted(dscps)}")
        dscp = dscps.pop()
        if dscp not in tc_of_dscp or tc_of_dscp[dscp] not in queue_of_tc:
            raise ParseError(f"journey {journey}: DSCP {dscp} reaches no tx-queue")
        queue = queue_of_tc[tc_of_dscp[dscp]]
        per_if: dict[str, tuple[bool, float | None]] = {}
        for ifname, (link, queues) in wan.items():
            strict_q = {q: lines for q, lines in queues.items() if "no priority" not in lines}
            rr = {q: lines for q, lines in queues.items() if "no priority" in lines}
            if strict_q and rr and min(strict_q) < max(rr):
                raise ParseError(f"{ifname}: a strict tx-queue sits below a round-robin one")
            if queue not in queues:
                raise ParseError(f"{ifname}: journey {journey} uses tx-queue {queue}, which is not configured")
            caps = {q: _shape_kbps(ifname, q, lines) for q, lines in strict_q.items()}
            share: float | None = None
            if link:
                if queue in strict_q:
                    share = 100.0 * caps[queue] / link
                else:
                    pct = next(int(s.split()[-1]) for s in queues[queue] if s.startswith("bandwidth percent "))
                    share = pct * (link - sum(caps.values())) / link
            per_if[ifname] = (queue in strict_q, share)
        out[journey] = treatment(journey, dscp, per_if)
    return out


def _shape_kbps(ifname: str, queue: int, lines: list[str]) -> float:
    for line in lines:
        words = line.split()
        if words[:2] == ["shape", "rate"] and len(words) == 3:
            return float(words[2])
    raise ParseError(f"{ifname} tx-queue {queue} is strict without a shape rate: its share is unbounded")
