"""A self-contained HTML report: no scripts, no fonts or styles from elsewhere, one inline SVG plot per journey.

Each plot shows the journey's decisive measure per evaluation window, one
line per segment (the worst eight, so it stays readable), over a shaded band
where the target is met. Every text is escaped.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from controller.evaluate.checks import UNITS, CheckSpec
from controller.evaluate.engine import Evaluation, SegmentResult
from controller.evaluate.report import iso

PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
MAX_LINES = len(PALETTE)
W, H = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 170, 16, 40

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.fail { color: #b00020; font-weight: bold; } .pass { color: #1b7e2b; } .unknown { color: #a66300; }
.gap { background: #fbe9ff; padding: 6px 10px; border-left: 4px solid #8e24aa; margin: 6px 0; }
.note { color: #666; font-size: 0.85em; }
svg text { font-size: 11px; fill: #333; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _hhmm(ts: float, span: float) -> str:
    stamp = datetime.fromtimestamp(ts, UTC)
    return stamp.strftime("%m-%d %H:%M" if span > 86400 else "%H:%M")


def plot(journey: str, target: CheckSpec, results: list[SegmentResult], start: float, end: float) -> str:
    """An SVG line chart of ``target.name`` per window for the segments in ``results`` (already ranked)."""
    lines = [r for r in results if r.series][:MAX_LINES]
    values = [v for r in lines for _, v in r.series] + [target.target]
    lo, hi = min(values), max(values)
    if target.name == "apdex":
        lo, hi = 0.0, 1.0
    elif target.name in ("mos", "stall_score"):
        lo, hi = min(lo, 1.0), max(hi, 4.5) + 0.1
    else:
        lo = min(lo, 0.0)
        hi = hi + ((hi - lo) * 0.1 or 1.0)
    span = max(end - start, 1.0)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(ts: float) -> float:
        return LEFT + (ts - start) / span * pw

    def y(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * ph

    unit = UNITS.get(target.name, "")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{_e(journey)}: {_e(target.name)} per window against the target">',
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>',
    ]
    ty = y(target.target)
    band_top, band_bottom = (TOP, ty) if target.op == ">=" else (ty, TOP + ph)
    if target.op != "==":
        parts.append(
            f'<rect x="{LEFT}" y="{band_top:.1f}" width="{pw}" height="{max(band_bottom - band_top, 0):.1f}" '
            'fill="#2ca02c" fill-opacity="0.12"><title>target met</title></rect>'
        )
    parts.append(
        f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{LEFT + pw}" y2="{ty:.1f}" stroke="#2ca02c" stroke-dasharray="5,3"/>'
        # The target is the legend's first entry, so its label never overlaps the series' entries.
        f'<line x1="{LEFT + pw + 4}" y1="{TOP + 15.5}" x2="{LEFT + pw + 14}" y2="{TOP + 15.5}" stroke="#2ca02c" '
        'stroke-dasharray="3,2"/>'
        f'<text x="{LEFT + pw + 18}" y="{TOP + 19}">target {_e(target.op)} {_e(_fmt(target.target))}</text>'
    )
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(
            f'<line x1="{LEFT - 4}" y1="{y(v):.1f}" x2="{LEFT}" y2="{y(v):.1f}" stroke="#999"/>'
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_e(_fmt(v))}</text>'
        )
    for k in range(5):
        ts = start + span * k / 4
        parts.append(f'<text x="{x(ts):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{_e(_hhmm(ts, span))}</text>')
    parts.append(
        f'<text x="{LEFT}" y="{H - 4}">{_e(target.name)}{_e(" (" + unit + ")" if unit else "")} per window, UTC</text>'
    )
    for i, r in enumerate(lines):
        colour = PALETTE[i]
        points = [(x(t), y(v)) for t, v in r.series]
        path = " ".join(f"{'M' if k == 0 else 'L'}{px:.1f},{py:.1f}" for k, (px, py) in enumerate(points))
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        for px, py in points if len(points) <= 60 else points[-1:]:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{colour}"/>')
        ly = TOP + 14 + (i + 1) * 16
        parts.append(
            f'<rect x="{LEFT + pw + 4}" y="{ly + 14:.1f}" width="10" height="3" fill="{colour}"/>'
            f'<text x="{LEFT + pw + 18}" y="{ly + 19:.1f}">{_e(r.segment.label)} ({_e(r.status)})</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _row(rank: int, r: SegmentResult) -> str:
    primary = "; ".join(c.describe() for c in r.checks if c.primary)
    eb = r.error_budget
    compliance = "-" if eb.compliance_pct is None else f"{eb.compliance_pct:.1f} % of {eb.good + eb.bad}"
    qoe = "-" if r.qoe is None else f"{r.qoe.value:.2f} ({r.qoe.model})"
    comp = "-" if r.composite is None else f"{r.composite.score:.0f} % {r.composite.band}"
    alerts = ", ".join(f"{a.severity}: {a.name}" for a in r.alerts if a.firing) or "-"
    return (
        f"<tr><td>{rank}</td><td>{_e(r.journey)}</td><td>{_e(r.segment.label)}</td>"
        f'<td class="{_e(r.status)}">{_e(r.status)}</td><td>{_e(qoe)}</td><td>{_e(comp)}</td>'
        f"<td>{_e(primary)}</td><td>{_e(compliance)}</td><td>{_e(alerts)}</td>"
        f"<td>{_e('; '.join(r.reasons))}</td></tr>"
    )


def render_html(evaluation: Evaluation) -> str:
    c = evaluation.counts()
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>qoectl verify report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>qoectl verify: measured experience against the journey targets</h1>",
        f"<p>Range {_e(iso(evaluation.start) or '-')} to {_e(iso(evaluation.end) or '-')}. "
        f'<span class="{_e(evaluation.status)}">{_e(evaluation.status)}</span>: '
        f"{c['fail']} out of target, {c['unknown']} unknown, {c['pass']} in target. Worst first.</p>",
    ]
    for r in evaluation.results:
        if r.perception_gap:
            out.append(
                f'<div class="gap"><b>Perception gap</b> {_e(r.journey)} @ {_e(r.segment.label)}: '
                f"{_e(r.perception_gap)}</div>"
            )
    out.append(
        "<table><tr><th>#</th><th>journey</th><th>segment</th><th>status</th><th>QoE</th><th>composite</th>"
        "<th>primary checks</th><th>windows in target</th><th>burn-rate alerts</th><th>why</th></tr>"
    )
    out += [_row(i + 1, r) for i, r in enumerate(evaluation.results)]
    out.append("</table>")
    journeys: dict[str, list[SegmentResult]] = {}
    for r in evaluation.results:
        journeys.setdefault(r.journey, []).append(r)
    start = evaluation.start if evaluation.start is not None else 0.0
    end = evaluation.end if evaluation.end is not None else start + 1.0
    for journey in sorted(journeys):
        target = evaluation.plot_targets.get(journey)
        results = journeys[journey]
        out.append(f"<h2>{_e(journey)}</h2>")
        if target is None or not any(r.series for r in results):
            out.append('<p class="note">No windows with a value to plot.</p>')
            continue
        out.append(plot(journey, target, results, start, end))
        hidden = sum(1 for r in results if r.series) - MAX_LINES
        if hidden > 0:
            out.append(f'<p class="note">{hidden} more segment(s) not drawn; see the table.</p>')
    for note in evaluation.notes:
        out.append(f'<p class="note">note: {_e(note)}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"
