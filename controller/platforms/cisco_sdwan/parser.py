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
from collections.abc import Collection

from controller.configtext import meaning
from controller.configtext.cli_tree import Node
from controller.configtext.cli_tree import parse as parse_tree
from controller.configtext.meaning import DevicePaths, DeviceTreatment, ParseError, dscp_value, journey_key

__all__ = ["parse", "paths", "tree"]

JOURNEY = re.compile(r"^journey (\S+)")


def tree(text: str) -> Node:
    """The config as one root node (:func:`controller.configtext.cli_tree.parse`)."""
    return Node("", parse_tree(text))


def _journey(node: Node) -> str | None:
    """The journey a ``! journey NAME`` comment right before the node names."""
    m = JOURNEY.match(node.comment or "")
    return m.group(1) if m else None


def _defined(name: str, known: Collection[str], what: str) -> str:
    """``name``, which a reference names; ParseError when nothing of that name is defined."""
    if name not in known:
        raise ParseError(f"{what} {name}")
    return name


def _named(parent: Node, kind: str) -> dict[str, Node]:
    return {n.line.split()[1]: n for n in parent.child(kind)}


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
            words = c.line.split()
            if words[0] != "class" or words[2] != "queue":
                raise ParseError(f"unexpected class-map line {c.line!r}")
            queue_of[words[1]] = int(words[3])
    acls = _named(policy, "access-list")
    schedulers = _named(policy, "qos-scheduler")
    maps = _named(policy, "qos-map")
    attached: set[str] = set()
    wan_maps: dict[str, str] = {}
    for vpn in root.child("vpn"):
        transport = vpn.line.split()[1] == "0"
        for intf in vpn.child("interface"):
            name = intf.line.split()[1]
            if transport and intf.value("qos-map"):
                wan_maps[name] = str(intf.value("qos-map"))
            for a in intf.child("access-list"):
                words = a.line.split()
                if words[-1] == "in":
                    attached.add(words[1])
    marks: dict[str, tuple[int, str]] = {}
    for acl in sorted(attached):
        for seq in acls[_defined(acl, acls, "interface uses undefined access-list")].child("sequence"):
            for m in seq.child("match"):
                for line in m.children:
                    if line.words[0].endswith("data-prefix-list"):
                        _defined(line.words[1], lists, f"access-list {acl} uses undefined list")
            journey = _journey(seq)
            if journey is None:
                continue
            action = seq.child("action accept")
            if not action:
                raise ParseError(f"journey {journey}: sequence is not accepted")
            dscp, cls = action[0].value("set dscp"), action[0].value("class")
            if dscp is None or cls is None:
                raise ParseError(f"journey {journey}: sequence does not set both DSCP and class")
            if cls not in queue_of:
                raise ParseError(f"class {cls} is not mapped to a queue")
            got = (dscp_value(dscp), cls)
            if marks.setdefault(journey_key(journey), got) != got:
                raise ParseError(f"journey {journey} is marked or classed two ways")
    per_if: dict[str, dict[str, tuple[bool, float]]] = {}
    for ifname, qmap in wan_maps.items():
        _defined(qmap, maps, f"{ifname} uses undefined qos-map")
        classes: dict[str, tuple[bool, float]] = {}
        total = 0
        for ref in maps[qmap].children:
            sname = _defined(ref.words[1], schedulers, f"qos-map {qmap} uses undefined qos-scheduler")
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
            _defined(site_list.words[1], sites, "apply-policy uses undefined site-list")
            for aar in site_list.child("app-route-policy"):
                _defined(aar.words[1], aars, "apply-policy uses undefined app-route-policy")


def _check_centralized(text: str, marks: dict[str, tuple[int, str]]) -> None:
    root = tree(text)
    policy = _policy(root, "centralized-policy.cfg")
    lists = policy.child("lists")[0] if policy.child("lists") else Node("lists")
    _check_applied(root, policy, lists)
    known = set(_named(lists, "data-prefix-list")) | set(_named(lists, "vpn-list"))
    slas = set(_named(policy, "sla-class"))
    for aar in policy.child("app-route-policy"):
        for vpn_list in aar.child("vpn-list"):
            _defined(vpn_list.words[1], known, "app-route-policy uses undefined vpn-list")
            for seq in vpn_list.child("sequence"):
                match = seq.child("match")[0]
                for line in match.children:
                    if line.words[0].endswith("data-prefix-list"):
                        _defined(line.words[1], known, "app-route sequence uses undefined list")
                for line in seq.child("action")[0].children:
                    if line.words[0] == "sla-class":
                        _defined(line.words[1], slas, "app-route sequence uses undefined sla-class")
                journey = _journey(seq)
                if journey is None:
                    continue
                key = journey_key(journey)
                dscp = match.value("dscp")
                if key not in marks:
                    raise ParseError(f"journey {journey} is routed but never marked at the edge")
                if dscp is None or int(dscp) != marks[key][0]:
                    raise ParseError(f"journey {journey}: app-route matches DSCP {dscp}, edge marks {marks[key][0]}")


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
        out[journey] = meaning.treatment(journey, dscp, here)
    return out


# -- path preference ------------------------------------------------------------------------------------------
#
# What the app-route actions mean on the edge: ``sla-class NAME [strict] [preferred-color COLORS]`` sends matching
# traffic over the tunnels that meet NAME, the preferred colours first while they meet it, and "if no tunnels match
# the SLA, data traffic is sent through any available tunnel" (Cisco Catalyst SD-WAN Policy Groups Configuration
# Guide 26.x, "Create an application priority and SLA policy", Preferred Path). ``backup-sla-preferred-color``,
# ``strict`` and ``fallback-to-best-path`` decide what happens when no tunnel meets the SLA class
# (networkacademy.io, AAR chapters; Cisco Policies Configuration Guide, "Application-Aware Routing"), so a sequence
# with no ``sla-class`` states no preference the edge acts on: it spreads the journey over every tunnel.


def _thresholds(sla_class: Node) -> dict[str, float]:
    out = {}
    for line in sla_class.children:
        words = line.words
        if words[0] not in ("latency", "jitter", "loss") or len(words) != 2:
            raise ParseError(f"unexpected sla-class line {line.line!r}")
        out[words[0]] = float(words[1])
    if not out:
        raise ParseError(f"{sla_class.line} has no threshold")
    return out


def _choice(action: Node, slas: dict[str, dict[str, float]]) -> meaning.PathChoice:
    for line in action.children:
        words = line.words
        if words[0] != "sla-class":
            continue
        _defined(words[1], slas, "app-route sequence uses undefined sla-class")
        colours = words[words.index("preferred-color") + 1 :] if "preferred-color" in words else []
        return meaning.PathChoice(frozenset(colours), slas[words[1]])
    # Only backup-sla-preferred-color (or nothing): it applies when an SLA class is not met, and there is none.
    return meaning.PathChoice(frozenset(), None)


def paths(files: dict[str, str]) -> DevicePaths:
    """Journey -> where the app-route policy sends it (see the comment above for what the actions mean)."""
    policy = _policy(tree(files["centralized-policy.cfg"]), "centralized-policy.cfg")
    slas = {name: _thresholds(node) for name, node in _named(policy, "sla-class").items()}
    out: DevicePaths = {}
    for aar in policy.child("app-route-policy"):
        for vpn_list in aar.child("vpn-list"):
            for seq in vpn_list.child("sequence"):
                journey = _journey(seq)
                if journey is None:
                    continue
                choice = _choice(seq.child("action")[0], slas)
                if out.setdefault(journey_key(journey), choice) != choice:
                    raise ParseError(f"journey {journey} is routed two ways")
    return out
