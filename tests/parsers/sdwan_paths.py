"""SD-WAN path preference, read back from the rendered text: where each journey goes while every path is healthy.

Independent of the renderers like the other parsers (it reads only text; it
reuses the Cisco, FortiOS and Linux *readers* of ``tests/parsers``). One function per
SD-WAN platform in :data:`PATH_PARSERS`, each ``files -> journey -> PathChoice``.

What the Cisco SD-WAN app-route actions mean on the edge: ``sla-class NAME
[strict] [preferred-color COLORS]`` sends matching traffic over the tunnels
that meet NAME, the preferred colours first while they meet it, and "if no
tunnels match the SLA, data traffic is sent through any available tunnel"
(Cisco Catalyst SD-WAN Policy Groups Configuration Guide 26.x, "Create an
application priority and SLA policy", Preferred Path). ``backup-sla-preferred-
color``, ``strict`` and ``fallback-to-best-path`` decide what happens when no
tunnel meets the SLA class (networkacademy.io, AAR chapters; Cisco Policies
Configuration Guide, "Application-Aware Routing"), so a sequence with no
``sla-class`` states no preference the edge acts on: it spreads the journey
over every tunnel.

What the FortiOS SD-WAN rules mean (FortiOS Administration Guide, "Lowest cost
(SLA) strategy" and "Manual strategy"): in ``sla`` mode the members that meet
the rule's health-check SLA, then the lowest cost, then ``priority-members``
order; in ``manual`` mode the first member in ``priority-members`` order that
is up. With every member up, meeting the SLA and at equal cost, the first
``priority-members`` entry carries the journey either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.parsers import ParseError, journey_key
from tests.parsers import cisco_sdwan as cisco
from tests.parsers import fortios_sdwan as fortios
from tests.parsers import linux as linux_parser


@dataclass(frozen=True, slots=True)
class PathChoice:
    """Where an SD-WAN edge sends one journey.

    ``preferred`` is what carries the journey while every path is up and meets
    its SLA: TLOC colours on Cisco SD-WAN, member interfaces on FortiOS (the
    caller maps interfaces to transports from the inventory). Empty when the
    text states no preference the device acts on (it spreads the journey over
    every path). ``sla`` is the round-trip thresholds the steering measures
    paths against (``latency``/``jitter`` ms, ``loss`` %), None when nothing is
    measured.
    """

    preferred: frozenset[str]
    sla: dict[str, float] | None
    # Every path in the order the device falls back through them while the earlier ones are down (FortiOS:
    # priority-members; Linux: its ip rules), None where the text states no order (Cisco spreads the journey).
    order: tuple[str, ...] | None = None


DevicePaths = dict[str, PathChoice]
PathParser = Callable[[dict[str, str]], DevicePaths]


def _cisco_thresholds(sla_class: cisco.Node) -> dict[str, float]:
    out = {}
    for line in sla_class.children:
        words = line.text.split()
        if words[0] not in ("latency", "jitter", "loss") or len(words) != 2:
            raise ParseError(f"unexpected sla-class line {line.text!r}")
        out[words[0]] = float(words[1])
    if not out:
        raise ParseError(f"{sla_class.text} has no threshold")
    return out


def _cisco_choice(action: cisco.Node, slas: dict[str, dict[str, float]]) -> PathChoice:
    for line in action.children:
        words = line.text.split()
        if words[0] != "sla-class":
            continue
        if words[1] not in slas:
            raise ParseError(f"app-route sequence uses undefined sla-class {words[1]}")
        colours = words[words.index("preferred-color") + 1 :] if "preferred-color" in words else []
        return PathChoice(frozenset(colours), slas[words[1]])
    # Only backup-sla-preferred-color (or nothing): it applies when an SLA class is not met, and there is none.
    return PathChoice(frozenset(), None)


def cisco_sdwan(files: dict[str, str]) -> DevicePaths:
    """Journey -> where the app-route policy sends it (see the module docstring for what the actions mean)."""
    policy = cisco._policy(cisco.tree(files["centralized-policy.cfg"]), "centralized-policy.cfg")
    slas = {name: _cisco_thresholds(node) for name, node in cisco._named(policy, "sla-class").items()}
    out: DevicePaths = {}
    for aar in policy.child("app-route-policy"):
        for vpn_list in aar.child("vpn-list"):
            for seq in vpn_list.child("sequence"):
                if seq.journey is None:
                    continue
                choice = _cisco_choice(seq.child("action")[0], slas)
                if out.setdefault(journey_key(seq.journey), choice) != choice:
                    raise ParseError(f"journey {seq.journey} is routed two ways")
    return out


FORTIOS_SLA_FIELDS = {"latency-threshold": "latency", "jitter-threshold": "jitter", "packetloss-threshold": "loss"}


def fortios_sdwan(files: dict[str, str]) -> DevicePaths:
    """Journey -> where its SD-WAN rules send it: the first priority member's interface, and the SLA measured."""
    text = files["fortios.conf"]
    sdwan = fortios.read(text).tables["system sdwan"][""]
    entries = {k: m for k, m in sdwan.tables.get("members", {}).items() if k}
    members = {k: str(m.get("interface")) for k, m in entries.items()}
    if len({m.get("cost") for m in entries.values()}) > 1:
        raise ParseError("members differ in cost: priority-members order alone does not decide")
    checks = {k: hc for k, hc in sdwan.tables.get("health-check", {}).items() if k}
    rules = {k: v for k, v in sdwan.tables.get("service", {}).items() if k}
    out: DevicePaths = {}
    for m in map(fortios.RULE.match, text.splitlines()):
        if not m:
            continue
        rid, journey = m.group(1), m.group(2)
        rule = rules.get(rid)
        if rule is None:
            raise ParseError(f"header names SD-WAN rule {rid}, which is not configured")
        order = rule.settings.get("priority-members", [])
        if any(seq not in members for seq in order):
            raise ParseError(f"SD-WAN rule {rid} names a member that is not configured")
        sla = None
        if rule.get("mode") == "sla":
            refs = [(name, str(entry.get("id"))) for name, entry in rule.tables.get("sla", {}).items() if name]
            if len(refs) != 1 or refs[0][0] not in checks:
                raise ParseError(f"SD-WAN rule {rid} in sla mode needs exactly one configured health-check")
            name, sla_id = refs[0]
            target = checks[name].tables.get("sla", {}).get(sla_id)
            if target is None:
                raise ParseError(f"health-check {name} has no SLA {sla_id}")
            sla = {v: float(str(target.get(k))) for k, v in FORTIOS_SLA_FIELDS.items() if target.get(k) is not None}
        elif rule.get("mode") != "manual":
            raise ParseError(f"SD-WAN rule {rid}: mode {rule.get('mode')} is not read")
        choice = PathChoice(
            frozenset({members[order[0]]}) if order else frozenset(), sla, tuple(members[k] for k in order)
        )
        if out.setdefault(journey_key(journey), choice) != choice:
            raise ParseError(f"journey {journey} is steered two ways")
    return out


def linux(files: dict[str, str]) -> DevicePaths:
    """Journey -> the WAN devices its IPv4 ip rules try, in order (tests/parsers/linux.py reads the marks and rules).

    The first device whose table has a route carries the journey. No SLA is measured by the router (``qoectl
    loop`` measures the transports and moves journeys), so ``sla`` is None. A strict journey's order ends in
    ``unreachable``; others fall through to the main table after the last.
    """
    return {
        journey: PathChoice(frozenset(p.order[:1]), None, p.order)
        for journey, p in linux_parser.paths(files, "4").items()
    }


# SD-WAN platforms: journey -> where the edge sends it (path preference).
PATH_PARSERS: dict[str, PathParser] = {"cisco_sdwan": cisco_sdwan, "fortios_sdwan": fortios_sdwan, "linux": linux}
