"""The path part of ``qoectl loop``'s HTML report: per SD-WAN edge, the transport each journey left by in every
cycle next to the journey's figures, and each transport's health with its verdict per SLA class.

Plain tables (no scripts), every text escaped; a cell where the path changed from the cycle before is marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from controller.evaluate.html import PALETTE, _e

if TYPE_CHECKING:
    from controller.loop import CycleResult


FIGURES = (
    ("one_way_delay_p99_ms", "delay p99 ", ".3g", " ms"),
    ("loss_pct", "loss ", ".3g", " %"),
    ("E-model MOS", "MOS ", ".2f", ""),
    ("Apdex", "Apdex ", ".2f", ""),
)


def _colours(results: Sequence[CycleResult]) -> dict[str, str]:
    names = sorted({t for r in results for j in r.paths.values() for t in j.values()})
    return {t: PALETTE[(i + 1) % len(PALETTE)] for i, t in enumerate(names)}


def _figure(figures: Mapping[str, float], name: str, fmt: str) -> str:
    value = figures.get(name)
    return "-" if value is None else format(value, fmt)


def journey_paths(results: Sequence[CycleResult], journey: str) -> str:
    """One journey's path per cycle on each edge that steers it, beside its delay, loss and QoE at each site."""
    devices = sorted({d for r in results for d, js in r.paths.items() if journey in js})
    if not devices:
        return ""
    colour = _colours(results)
    keys = sorted({k for r in results for k in r.figures if k.startswith(f"{journey}@")})
    head = "".join(f"<th>path on {_e(d)}</th>" for d in devices)
    head += "".join(f"<th>{_e(k)}</th>" for k in keys)
    out = [f"<table class='paths'><tr><th>cycle</th>{head}<th>path changes</th></tr>"]
    before: dict[str, str] = {}
    for i, r in enumerate(results, 1):
        cells = []
        for d in devices:
            t = r.paths.get(d, {}).get(journey)
            moved = t is not None and before.get(d) not in (None, t)
            style = f"color:{colour.get(t or '', '#333')}" + (";font-weight:bold;background:#f3e5f5" if moved else "")
            cells.append(f"<td style='{style}'>{_e(t or '-')}{' (moved)' if moved else ''}</td>")
            if t is not None:
                before[d] = t
        for k in keys:
            f = r.figures.get(k, {})
            verdict = r.decision.verdicts.get(k, "unknown")
            shown = [f"{label}{format(f[name], fmt)}{unit}" for name, label, fmt, unit in FIGURES if name in f]
            cells.append(f"<td class='{_e(verdict)}'>{_e(verdict)}{': ' if shown else ''}{', '.join(shown)}</td>")
        acts = [
            f"{_e(a.kind)} {_e(a.device or '')}: {_e(a.before)} -> {_e(a.after)}"
            for a in r.decision.actions
            if a.journey == journey and a.kind in ("move_path", "path_back")
        ]
        out.append(f"<tr><td>{i}</td>{''.join(cells)}<td>{'<br>'.join(acts) or '-'}</td></tr>")
    out.append("</table>")
    return "".join(out)


def transport_health(results: Sequence[CycleResult]) -> str:
    """Per edge and transport, per cycle: mean delay, jitter, loss and the verdict per SLA class."""
    keys = sorted({k for r in results for k in r.transports})
    if not keys:
        return ""
    out = ["<h2>Transport health (per edge, as it measures each transport)</h2><table>"]
    out.append("<tr><th>cycle</th>" + "".join(f"<th>{_e(k)}</th>" for k in keys) + "</tr>")
    for i, r in enumerate(results, 1):
        cells = []
        for k in keys:
            h = r.transports.get(k, {})
            if not h:
                cells.append("<td>-</td>")
                continue
            nums = {n: v for n, v in h.items() if isinstance(v, float | int)}
            text = (
                f"{_figure(nums, 'delay_ms', '.3g')} ms, jitter {_figure(nums, 'jitter_ms', '.3g')} ms, "
                f"loss {_figure(nums, 'loss_pct', '.3g')} %"
            )
            slas = " ".join(
                f"<span class='{_e(str(v))}'>{_e(n.removeprefix('sla:'))}</span>"
                for n, v in sorted(h.items())
                if n.startswith("sla:")
            )
            error = f" <span class='fail'>{_e(str(h['error']))}</span>" if "error" in h else ""
            cells.append(f"<td>{text}{error}<br>{slas}</td>")
        out.append(f"<tr><td>{i}</td>{''.join(cells)}</tr>")
    out.append("</table><p class='note'>SLA classes in green met, in red missed, by the transport that cycle.</p>")
    return "".join(out)
