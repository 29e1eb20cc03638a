"""Read rendered device configs back: is a class really strict priority in the text a device receives?

The compiled plan says which class is strict; these probes check that the
*rendered* config says so too, by the platform's own parser
(``controller.platforms.<name>.parser``, the one apply, ``explain`` and the
tests use), on every WAN interface the plan queues. A platform without a
parser has no probe and is reported as such (never silently passed); it cannot
register either.

A probe returns the problems it found (empty: the text expresses strict
priority for the class on every WAN interface the plan queues).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from controller import registry
from controller.configtext.meaning import ParseError, journey_key, parse, parser_of, path_parser
from controller.plan import DevicePlan, QosClass

Probe = Callable[[Mapping[str, str], DevicePlan, QosClass], list[str]]


def _has_parser(platform: str) -> bool:
    try:
        parser_of(platform)
    except LookupError:
        return False
    return True


def strict_priority_probe(platform: str) -> Probe | None:
    """``probe(files, plan, cls)`` for a platform, read by its parser (None: the platform has no parser)."""
    return functools.partial(_strict, platform) if _has_parser(platform) else None


def probed_platforms() -> list[str]:
    return [p for p in registry.names() if _has_parser(p)]


def queued_wan(plan: DevicePlan) -> int:
    """How many WAN interfaces the plan queues (each needs its own strict queue)."""
    return sum(1 for i in plan.wan_interfaces if i.link_kbps)


def _strict(platform: str, files: Mapping[str, str], plan: DevicePlan, cls: QosClass) -> list[str]:
    """Every journey the plan puts in ``cls`` is read back as strict priority on every queued WAN interface."""
    keys = [journey_key(r.journey) for r in plan.markings if r.class_name == cls.name]
    if not keys:
        return [f"no journey is marked into class {cls.name}: the text cannot show it strict"]
    try:
        read = parse(platform, dict(files))
    except ParseError as e:
        return [f"the {platform} config does not read back: {e}"]
    wanted = max(queued_wan(plan), 1)
    problems: list[str] = []
    for key in keys:
        treatment = read.get(key)
        if treatment is None:
            problems.append(f"journey {key} (class {cls.name}) is not in the config")
        elif not treatment.strict:
            problems.append(f"journey {key} (class {cls.name}) is not strict priority in the config")
        elif len(treatment.shares) < wanted:
            found = len(treatment.shares)
            problems.append(f"journey {key} (class {cls.name}) is strict on {found} of {wanted} WAN queuing policies")
    return problems


# --------------------------------------------------------------------------- SD-WAN SLA latency

SlaProbe = Callable[[Mapping[str, str], DevicePlan, str], float | None]


def sla_latency_probe(platform: str) -> SlaProbe | None:
    """``probe(files, plan, sla_name)``: the latency threshold the text states for the SLA class's journeys, in ms,
    as the platform measures it (round trip on both SD-WAN platforms), or None when the text states none. None
    for a platform whose parser reads no path preference."""
    if not _has_parser(platform) or path_parser(platform) is None:
        return None
    return functools.partial(_sla_latency, platform)


def _sla_latency(platform: str, files: Mapping[str, str], plan: DevicePlan, sla: str) -> float | None:
    read = path_parser(platform)
    journeys = next((s.journeys for s in plan.sla_classes if s.name == sla), ())
    if read is None or not journeys:
        return None
    choices = read(dict(files))
    found = [c.sla["latency"] for j in journeys if (c := choices.get(journey_key(j))) and c.sla and "latency" in c.sla]
    return max(found) if found else None
