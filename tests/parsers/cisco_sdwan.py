"""Cisco Catalyst SD-WAN (Viptela CLI), read back from the two rendered files.

Chain, in ``localized-policy.cfg``: the access lists attached ``in`` on a
service-VPN interface -> the sequence a ``! journey NAME`` comment introduces
-> its ``set dscp`` and ``class`` -> ``class-map``: that class's queue -> on
each ``vpn 0`` interface: its ``qos-map`` -> the ``qos-scheduler`` for that
class -> ``scheduling llq`` (strict; only queue 0 may be the LLQ) and
``bandwidth-percent`` (share, already in percent of the interface rate, which
is the shaping rate on shaped links and the link itself otherwise).

``centralized-policy.cfg`` is cross-checked: the journey's app-route sequences
must match the DSCP the edge marks, and every referenced list and SLA class
must exist. Any dangling reference is a :class:`ParseError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tests.parsers import DeviceTreatment, ParseError, dscp_value, journey_key, treatment

JOURNEY = re.compile(r"^!\s*journey (\S+)")


@dataclass
class Node:
    text: str
    journey: str | None = None  # from a "! journey NAME" comment right before this line
    children: list[Node] = field(default_factory=list)

    def child(self, prefix: str) -> list[Node]:
        return [c for c in self.children if c.text == prefix or c.text.startswith(prefix + " ")]

    def value(self, key: str) -> str | None:
        found = [c.text[len(key) + 1 :] for c in self.children if c.text.startswith(key + " ")]
        return found[0] if found else None


def tree(text: str) -> Node:
    """Indentation tree; bare ``!`` lines close blocks, ``! journey`` comments tag the next line."""
    root = Node("")
    stack: list[tuple[int, Node]] = [(-1, root)]
    pending: str | None = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("!"):
            m = JOURNEY.match(stripped)
            if m:
                pending = m.group(1)
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        while stack[-1][0] >= indent:
            stack.pop()
        node = Node(stripped, pending)
        pending = None
        stack[-1][1].children.append(node)
        stack.append((indent, node))
    return root


def _named(parent: Node, kind: str) -> dict[str, Node]:
    return {n.text.split()[1]: n for n in parent.child(kind)}


def _policy(root: Node, file: str) -> Node:
    found = root.child("policy")
    if len(found) != 1:
        raise ParseError(f"{file}: expected one policy block, found {len(found)}")
    return found[0]


def _localized(text: str) -> tuple[dict[str, tuple[int, str]], dict[str, dict[str, tuple[bool, float]]]]:
    """Journey -> (dscp, class) from the attached ACLs, and interface -> class -> (strict, share)."""
    root = tree(text)
    policy = _policy(root, "localized-policy.cfg")
    lists = set(_named(policy.child("lists")[0], "data-prefix-list")) if policy.child("lists") else set()
    queue_of: dict[str, int] = {}
    for cm in policy.child("class-map"):
        for c in cm.children:
            words = c.text.split()
            if words[0] != "class" or words[2] != "queue":
                raise ParseError(f"unexpected class-map line {c.text!r}")
            queue_of[words[1]] = int(words[3])
    acls = _named(policy, "access-list")
    schedulers = _named(policy, "qos-scheduler")
    maps = _named(policy, "qos-map")
    attached: set[str] = set()
    wan_maps: dict[str, str] = {}
    for vpn in root.child("vpn"):
        transport = vpn.text.split()[1] == "0"
        for intf in vpn.child("interface"):
            name = intf.text.split()[1]
            if transport and intf.value("qos-map"):
                wan_maps[name] = str(intf.value("qos-map"))
            for a in intf.child("access-list"):
                words = a.text.split()
                if words[-1] == "in":
                    attached.add(words[1])
    marks: dict[str, tuple[int, str]] = {}
    for acl in sorted(attached):
        if acl not in acls:
            raise ParseError(f"interface uses undefined access-list {acl}")
        for seq in acls[acl].child("sequence"):
            for m in seq.child("match"):
                for line in m.children:
                    if line.text.split()[0].endswith("data-prefix-list") and line.text.split()[1] not in lists:
                        raise ParseError(f"access-list {acl} uses undefined list {line.text.split()[1]}")
            if seq.journey is None:
                continue
            action = seq.child("action accept")
            if not action:
                raise ParseError(f"journey {seq.journey}: sequence is not accepted")
            dscp, cls = action[0].value("set dscp"), action[0].value("class")
            if dscp is None or cls is None:
                raise ParseError(f"journey {seq.journey}: sequence does not set both DSCP and class")
            if cls not in queue_of:
                raise ParseError(f"class {cls} is not mapped to a queue")
            got = (dscp_value(dscp), cls)
            if marks.setdefault(journey_key(seq.journey), got) != got:
                raise ParseError(f"journey {seq.journey} is marked or classed two ways")
    per_if: dict[str, dict[str, tuple[bool, float]]] = {}
    for ifname, qmap in wan_maps.items():
        if qmap not in maps:
            raise ParseError(f"{ifname} uses undefined qos-map {qmap}")
        classes: dict[str, tuple[bool, float]] = {}
        total = 0
        for ref in maps[qmap].children:
            sname = ref.text.split()[1]
            if sname not in schedulers:
                raise ParseError(f"qos-map {qmap} uses undefined qos-scheduler {sname}")
            s = schedulers[sname]
            cls = str(s.value("class"))
            strict = s.value("scheduling") == "llq"
            if strict and queue_of.get(cls) != 0:
                raise ParseError(f"{sname}: LLQ on a class that is not in queue 0")
            pct = int(str(s.value("bandwidth-percent")))
            total += pct
            classes[cls] = (strict, float(pct))
        if total != 100:
            raise ParseError(f"qos-map {qmap} bandwidth-percent adds up to {total}, not 100")
        per_if[ifname] = classes
    return marks, per_if


def _check_applied(root: Node, policy: Node, lists: Node) -> None:
    """``apply-policy`` names only site lists and app-route policies the policy block defines."""
    sites = _named(lists, "site-list")
    for name, site_list in sites.items():
        if not site_list.child("site-id"):
            raise ParseError(f"site-list {name} has no site-id")
    aars = set(_named(policy, "app-route-policy"))
    for applied in root.child("apply-policy"):
        for site_list in applied.child("site-list"):
            if site_list.text.split()[1] not in sites:
                raise ParseError(f"apply-policy uses undefined site-list {site_list.text.split()[1]}")
            for aar in site_list.child("app-route-policy"):
                if aar.text.split()[1] not in aars:
                    raise ParseError(f"apply-policy uses undefined app-route-policy {aar.text.split()[1]}")


def _check_centralized(text: str, marks: dict[str, tuple[int, str]]) -> None:
    root = tree(text)
    policy = _policy(root, "centralized-policy.cfg")
    lists = policy.child("lists")[0] if policy.child("lists") else Node("lists")
    _check_applied(root, policy, lists)
    known = set(_named(lists, "data-prefix-list")) | set(_named(lists, "vpn-list"))
    slas = set(_named(policy, "sla-class"))
    for aar in policy.child("app-route-policy"):
        for vpn_list in aar.child("vpn-list"):
            if vpn_list.text.split()[1] not in known:
                raise ParseError(f"app-route-policy uses undefined vpn-list {vpn_list.text.split()[1]}")
            for seq in vpn_list.child("sequence"):
                match = seq.child("match")[0]
                for line in match.children:
                    words = line.text.split()
                    if words[0].endswith("data-prefix-list") and words[1] not in known:
                        raise ParseError(f"app-route sequence uses undefined list {words[1]}")
                for line in seq.child("action")[0].children:
                    words = line.text.split()
                    if words[0] == "sla-class" and words[1] not in slas:
                        raise ParseError(f"app-route sequence uses undefined sla-class {words[1]}")
                if seq.journey is None:
                    continue
                key = journey_key(seq.journey)
                dscp = match.value("dscp")
                if key not in marks:
                    raise ParseError(f"journey {seq.journey} is routed but never marked at the edge")
                if dscp is None or int(dscp) != marks[key][0]:
                    raise ParseError(
                        f"journey {seq.journey}: app-route matches DSCP {dscp}, edge marks {marks[key][0]}"
                    )


def parse(files: dict[str, str]) -> DeviceTreatment:
    marks, per_if = _localized(files["localized-policy.cfg"])
    _check_centralized(files["centralized-policy.cfg"], marks)
    out: DeviceTreatment = {}
    for journey, (dscp, cls) in sorted(marks.items()):
        here: dict[str, tuple[bool, float | None]] = {}
        for ifname, classes in per_if.items():
            if cls not in classes:
                raise ParseError(f"class {cls} has no qos-scheduler on {ifname}")
            here[ifname] = classes[cls]
        out[journey] = treatment(journey, dscp, here)
    return out
