"""A Grafana dashboard (classic JSON model) over the series of :mod:`controller.export.prometheus`.

One row per journey with rules, four panels each: the QoE score per segment
(the journey's first primary check per window, verify's plot metric) against
its target, the targets, the share of windows in target over the period
against the objective, and the burn rates against the page threshold. Every
query reads only series the exported rule file records; the data source is a
template variable. Journeys without rules are listed in a text panel with the
reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from controller.evaluate import slo
from controller.export import prometheus as pr
from controller.export.sli import JourneySli, Note, plan
from controller.pipeline import Build

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ROW_H, PANEL_H = 1, 8
SEGMENT_LEGEND = "{{site}}{{context}}"
UNITS = {"ms": "ms", "%": "percent", "s": "s", "kbit/s": "Kbits"}


@dataclass(frozen=True)
class Dashboard:
    data: dict[str, Any]
    journeys: tuple[str, ...]
    notes: tuple[Note, ...]

    def text(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=True) + "\n"

    def exprs(self) -> list[str]:
        return [t["expr"] for p in self.data["panels"] for t in p.get("targets", [])]


def target(ref: str, expr: str, legend: str) -> dict[str, Any]:
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "range": True}


def panel(
    pid: int,
    kind: str,
    title: str,
    grid: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    defaults: dict[str, Any],
    description: str = "",
) -> dict[str, Any]:
    """A panel with the fields the dashboard model requires (type, options, fieldConfig, transformations)."""
    x, y, w, h = grid
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
        "transformations": [],
        "transparent": False,
    }


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def _score_panel(sli: JourneySli, pid: int, y: int) -> dict[str, Any]:
    check = sli.shown
    value = pr.sel(pr.MEASURE, journey=sli.name, metric=check.name)
    goal = pr.sel(pr.TARGET, journey=sli.name, metric=check.name)
    good, bad = ("green", "red") if check.op == ">=" else ("red", "green")
    defaults = {
        "unit": UNITS.get(check.unit, "none"),
        "thresholds": thresholds((None, bad), (check.target, good)),
        "custom": {"thresholdsStyle": {"mode": "line"}},
    }
    targets = [target("A", value, SEGMENT_LEGEND), target("B", goal, f"target {check.op} {check.target:g}")]
    title = f"QoE: {check.name} per {pr.duration(sli.journey.verify.window_s)} window"
    return panel(pid, "timeseries", title, (0, y, 9, PANEL_H), targets, defaults, "qoectl verify's plot metric")


def _target_panel(sli: JourneySli, pid: int, y: int) -> dict[str, Any]:
    expr = pr.sel(pr.TARGET, journey=sli.name)
    defaults = {"unit": "none", "decimals": 3}
    return panel(pid, "stat", "Targets", (9, y, 3, PANEL_H), [target("A", expr, "{{metric}} {{op}}")], defaults)


def _compliance_panel(sli: JourneySli, pid: int, y: int) -> dict[str, Any]:
    s = sli.journey.verify
    ids = pr.sloth_labels(sli.name)
    ratio = pr.sel(pr.ratio_name(s.period_s), **ids)
    objective = pr.sel("slo:objective:ratio", **ids)
    defaults = {
        "unit": "percentunit",
        "min": 0,
        "max": 1,
        "thresholds": thresholds((None, "red"), (s.objective_pct / 100.0, "green")),
        "custom": {"thresholdsStyle": {"mode": "line"}},
    }
    targets = [target("A", f"1 - {ratio}", SEGMENT_LEGEND), target("B", objective, "objective")]
    title = f"Windows in target over {pr.duration(s.period_s)}"
    return panel(pid, "timeseries", title, (12, y, 6, PANEL_H), targets, defaults)


def _burn_panel(sli: JourneySli, pid: int, y: int) -> dict[str, Any]:
    s = sli.journey.verify
    ids = pr.sloth_labels(sli.name)
    page = min(slo.burn_factor(s.period_s, share, lo) for sev, lo, _, share in slo.ALERTS if sev == "page")
    defaults = {
        "unit": "x",
        "thresholds": thresholds((None, "green"), (page, "red")),
        "custom": {"thresholdsStyle": {"mode": "line"}},
    }
    short = pr.duration(pr.lookbacks()[0])
    targets = [
        target("A", pr.sel("slo:current_burn_rate:ratio", **ids), f"{short} {SEGMENT_LEGEND}"),
        target("B", pr.sel("slo:period_burn_rate:ratio", **ids), f"{pr.duration(s.period_s)} {SEGMENT_LEGEND}"),
    ]
    return panel(pid, "timeseries", "Error budget burn rate", (18, y, 6, PANEL_H), targets, defaults)


def journey_panels(sli: JourneySli, first_id: int, y: int) -> list[dict[str, Any]]:
    """The row of one journey and its four panels, ids from ``first_id``, starting at height ``y``."""
    owner = f" ({sli.journey.owner})" if sli.journey.owner else ""
    row = {
        "id": first_id,
        "type": "row",
        "title": f"{sli.name}{owner}",
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": ROW_H},
        "panels": [],
    }
    makers = (_score_panel, _target_panel, _compliance_panel, _burn_panel)
    return [row] + [make(sli, first_id + 1 + k, y + ROW_H) for k, make in enumerate(makers)]


def notes_panel(notes: tuple[Note, ...], pid: int, y: int) -> dict[str, Any]:
    content = "\n".join(f"* {n.text()}" for n in notes)
    out = panel(pid, "text", "Journeys and their sources", (0, y, 24, 2 + len(notes)), [], {})
    out["options"] = {"mode": "markdown", "content": content}
    return out


def variables() -> dict[str, Any]:
    source = {
        "type": "datasource",
        "name": "datasource",
        "label": "Prometheus",
        "query": "prometheus",
        "hide": 0,
        "current": {},
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }
    return {"list": [source]}


def dashboard(build: Build, title: str = "qoectl journeys") -> Dashboard:
    slis, notes = plan(build)
    panels: list[dict[str, Any]] = []
    y = 0
    for sli in slis:
        panels += journey_panels(sli, len(panels) + 1, y)
        y += ROW_H + PANEL_H
    if notes:
        panels.append(notes_panel(notes, len(panels) + 1, y))
    data = {
        "title": title,
        "uid": "qoectl-" + hashlib.sha256(title.encode()).hexdigest()[:12],
        "description": "Journeys as qoectl verify judges them (qoectl export grafana-dashboard; docs/alerting.md)",
        "tags": ["qoectl", "slo"],
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "templating": variables(),
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }
    return Dashboard(data, tuple(s.name for s in slis), notes)
