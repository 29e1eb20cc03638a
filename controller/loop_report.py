"""The HTML report of a ``qoectl loop`` run: per journey its figures over the cycles, the actions marked, and
for each change the before/after of the journeys it touched (:func:`controller.adjust.before_after`); on SD-WAN
edges, each journey's path per cycle beside its figures and each transport's health
(:mod:`controller.loop_paths_report`).

Self-contained like ``qoectl verify --html`` (controller/evaluate/html.py): inline SVG, no scripts, every text
escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from controller.adjust import before_after
from controller.evaluate.html import CSS, PALETTE, _e
from controller.loop_paths_report import journey_paths, transport_health
from controller.model import Policy

if TYPE_CHECKING:
    from controller.loop import CycleResult

W, H, LEFT, RIGHT, TOP, BOTTOM = 760, 220, 64, 170, 16, 36
METRICS = (
    ("one_way_delay_p99_ms", "one-way delay p99 (ms, log scale)"),
    ("loss_pct", "loss (%)"),
)


def _plot(title: str, metric: str, series: dict[str, list[float | None]], marks: Sequence[int], log: bool) -> str:
    n = max((len(v) for v in series.values()), default=0)
    values = [x for v in series.values() for x in v if x is not None and math.isfinite(x)]
    if n == 0 or not values:
        return f"<p class='note'>{_e(title)}: no data</p>"

    def f(x: float) -> float:
        return math.log10(max(x, 0.1)) if log else x

    lo, hi = min(map(f, values)), max(map(f, values))
    if hi - lo < 1e-9:
        hi = lo + 1.0
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(i: int) -> float:
        return LEFT + (pw * i / max(n - 1, 1))

    def py(x: float) -> float:
        return TOP + ph - ph * (f(x) - lo) / (hi - lo)

    parts = [f"<svg width='{W}' height='{H}' role='img' aria-label='{_e(title)}'>"]
    parts.append(f"<rect x='{LEFT}' y='{TOP}' width='{pw}' height='{ph}' fill='none' stroke='#999'/>")
    for c in marks:
        x = px(c - 1)
        parts.append(
            f"<line x1='{x:.1f}' y1='{TOP}' x2='{x:.1f}' y2='{TOP + ph}' stroke='#8e24aa' stroke-dasharray='4'/>"
        )
    for k, (name, v) in enumerate(sorted(series.items())):
        color = PALETTE[k % len(PALETTE)]
        pts = [f"{px(i):.1f},{py(x):.1f}" for i, x in enumerate(v) if x is not None and math.isfinite(x)]
        if pts:
            parts.append(f"<polyline fill='none' stroke='{color}' stroke-width='2' points='{' '.join(pts)}'/>")
        parts.append(f"<text x='{W - RIGHT + 8}' y='{TOP + 14 + 14 * k}' fill='{color}'>{_e(name)}</text>")
    top = 10**hi if log else hi
    bottom = 10**lo if log else lo
    parts.append(f"<text x='4' y='{TOP + 10}'>{top:.3g}</text><text x='4' y='{TOP + ph}'>{bottom:.3g}</text>")
    for i in range(n):
        parts.append(f"<text x='{px(i) - 4:.1f}' y='{H - BOTTOM + 16}'>{i + 1}</text>")
    parts.append(f"<text x='{LEFT}' y='{H - 4}'>cycle ({_e(metric)}; dashed: a change applied)</text></svg>")
    return "".join(parts)


def render(results: Sequence[CycleResult], policy: Policy, title: str = "qoectl loop") -> str:
    journeys = sorted({k.split("@", 1)[0] for r in results for k in r.decision.verdicts})
    marks = [i + 1 for i, r in enumerate(results) if r.decision.actions]
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{CSS}</style>"]
    out.append(f"</head><body><h1>{_e(title)}</h1>")
    out.append("<table><tr><th>cycle</th><th>verdicts</th><th>actions</th><th>applied</th><th>duration</th></tr>")
    for i, r in enumerate(results, 1):
        verdicts = " ".join(
            f"<span class='{_e(v)}'>{_e(k)}: {_e(v)}</span>" for k, v in sorted(r.decision.verdicts.items())
        )
        acts = "<br>".join(
            f"{_e(a.kind)} {_e(a.device or '')}: {_e(a.before)} -> {_e(a.after)}" for a in r.decision.actions
        )
        out.append(
            f"<tr><td>{i}</td><td>{verdicts}</td><td>{acts or '-'}</td><td>{r.applied}</td>"
            f"<td>{r.duration_s:.1f} s</td></tr>"
        )
    out.append("</table>")
    out.append(transport_health(results))
    for j in journeys:
        out.append(f"<h2>{_e(j)}</h2>")
        out.append(journey_paths(results, j))
        keys = sorted({k for r in results for k in r.figures if k.startswith(f"{j}@")})
        for metric, label in METRICS:
            series = {k: [r.figures.get(k, {}).get(metric) for r in results] for k in keys}
            if any(x is not None for v in series.values() for x in v):
                out.append(_plot(f"{j} {label}", label, series, marks, metric.endswith("_ms")))
        qoe = {k: [next(iter(_qoe(r.figures.get(k, {}))), None) for r in results] for k in keys}
        if any(x is not None for v in qoe.values() for x in v):
            out.append(_plot(f"{j} QoE", "QoE (MOS / Apdex)", qoe, marks, False))
    out.append("<h2>Changes: before and after</h2>")
    any_change = False
    for i, r in enumerate(results):
        if not r.decision.actions or i + 1 >= len(results):
            continue
        any_change = True
        after = results[-1].baseline
        for rep in before_after(r.decision.actions, policy, r.baseline, after):
            a = rep.action
            out.append(f"<p><b>cycle {i + 1}: {_e(a.kind)}</b> {_e(a.reason)}</p><table>")
            out.append("<tr><th>journey @ segment</th><th>change (cycle before -> last cycle)</th></tr>")
            for s in rep.segments:
                out.append(f"<tr><td>{_e(s.label)}</td><td>{_e(s.change)}</td></tr>")
            out.append("</table>")
    if not any_change:
        out.append("<p class='note'>no change was made</p>")
    holds = [(i + 1, h.reason) for i, r in enumerate(results) for h in r.decision.holds]
    if holds:
        out.append("<h2>Left alone, and why</h2><ul>")
        out += [f"<li>cycle {c}: {_e(why)}</li>" for c, why in holds[-40:]]
        out.append("</ul>")
    out.append("</body></html>\n")
    return "".join(out)


def _qoe(figures: Mapping[str, float]) -> list[float]:
    return [v for k, v in figures.items() if k in ("E-model MOS", "Apdex", "mos", "apdex")]
