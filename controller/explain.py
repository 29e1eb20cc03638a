"""``qoectl explain``: how one journey's targets became budgets, classes and config lines.

Beside what the plan says, each device shows what its rendered config does with the journey, read back by the
platform's parser (:mod:`controller.configtext.meaning`): the same reading apply, the BDD probes and the tests use,
so a template that says something other than the plan shows here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from controller.compile.compiler import class_name_for
from controller.configtext.meaning import ParseError, journey_key, parse, path_parser
from controller.render import get_renderer


def explain(build: Any, journey_name: str, device: str | None = None) -> dict[str, Any]:
    """A JSON-ready explanation; ``build`` is a :class:`controller.pipeline.Build`."""
    journey = build.policy.journey(journey_name)
    if journey is None:
        raise KeyError(journey_name)
    budget = build.budgets.get(journey_name)
    devices = []
    for plan in build.plans:
        if device and plan.device != device:
            continue
        rule = next((r for r in plan.markings if r.journey == journey_name), None)
        if rule is None:
            continue
        cls = plan.qos_class(rule.class_name)
        renderer = get_renderer(plan.platform)
        files = renderer.render(plan) if renderer else {}
        lines = renderer.journey_lines(files, plan, journey_name) if renderer else {}
        sla = next((s for s in plan.sla_classes if journey_name in s.journeys), None)
        path = next((p for p in plan.path_preferences if p.journey == journey_name), None)
        devices.append(
            {
                "device": plan.device,
                "platform": plan.platform,
                "site": plan.site,
                "class": cls.name,
                "queue": cls.queue,
                "strict_priority": cls.strict,
                "dscp": rule.dscp_name,
                "interfaces": [
                    {"interface": i.name, **dataclasses.asdict(a)}
                    for i in plan.wan_interfaces
                    for a in i.allocations
                    if a.class_name == cls.name
                ],
                "sla_class": dataclasses.asdict(sla) if sla else None,
                "path": {"preferred": list(path.preferred), "backup": list(path.backup), "strict": path.strict}
                if path
                else None,
                "notes": list(plan.notes),
                "config_lines": lines,
                "read_back": read_back(plan.platform, files, journey_name) if files else None,
            }
        )
    return {
        "journey": journey.name,
        "owner": journey.owner,
        "kind": journey.kind,
        "priority": journey.priority,
        "target": dataclasses.asdict(journey.target),
        "service_class": class_name_for(journey),
        "budget": dataclasses.asdict(budget) if budget else None,
        "devices": devices,
    }


def read_back_text(back: dict[str, Any]) -> str:
    """One line for the terminal: what the rendered config does with the journey."""
    if "error" in back:
        return f"does not read back: {back['error']}"
    shares = ", ".join(f"{s['interface']} {s['pct']:g} %" for s in back["shares"] if s["pct"] is not None)
    words = [f"DSCP {back['dscp']}", "strict priority" if back["strict_priority"] else "not strict"]
    if shares:
        words.append(f"shares {shares}")
    if back["path"] and back["path"]["preferred"]:
        words.append(f"prefers {', '.join(back['path']['preferred'])}")
    return "; ".join(words)


def read_back(platform: str, files: dict[str, str], journey: str) -> dict[str, Any]:
    """What the platform's parser reads from ``files`` for one journey (``error``: the text does not read back)."""
    key = journey_key(journey)
    try:
        found = parse(platform, files).get(key)
        paths = path_parser(platform)
        choice = paths(files).get(key) if paths else None
    except ParseError as e:
        return {"error": str(e)}
    if found is None:
        return {"error": f"journey {key} is not in the rendered config"}
    return {
        "dscp": found.dscp,
        "strict_priority": found.strict,
        "shares": [{"interface": name, "pct": share} for name, share in found.shares],
        "path": {
            "preferred": sorted(choice.preferred),
            "order": None if choice.order is None else list(choice.order),
            "sla": choice.sla,
        }
        if choice
        else None,
    }
