"""Reports of an evaluation for people and for CI: JSON, a terminal table and JUnit XML.

All three list the same results in the same order (worst first) and are
deterministic: the same evaluation always gives the same bytes.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from controller.evaluate.engine import CheckResult, Evaluation, SegmentResult

EXIT_OK, EXIT_FAIL, EXIT_UNKNOWN = 0, 1, 3
STYLE = {"pass": "green", "fail": "red", "unknown": "yellow"}
SHORT = {"E-model MOS": "MOS", "P.1203.3 stall score": "stall", "windows in target": "in-target"}


def exit_code(evaluation: Evaluation) -> int:
    """0 all in target, 1 a journey out of target, 3 nothing failed but something could not be confirmed."""
    return {"pass": EXIT_OK, "fail": EXIT_FAIL, "unknown": EXIT_UNKNOWN}[evaluation.status]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


def _check_json(c: CheckResult) -> dict[str, Any]:
    return {
        "metric": c.name,
        "op": c.op,
        "target": c.target,
        "unit": c.unit,
        "measured": _r(c.measured),
        "upper_bound_only": c.bound,
        "status": c.status,
        "margin": _r(c.margin),
        "margin_pct": _r(c.margin_pct, 2),
        "primary": c.primary,
        "source": c.source,
        "statistic": c.statistic,
        "samples": c.samples,
    }


def result_json(r: SegmentResult, rank: int) -> dict[str, Any]:
    fb = r.feedback
    return {
        "rank": rank,
        "journey": r.journey,
        "kind": r.kind,
        "priority": r.priority,
        "segment": r.segment.to_json(),
        "status": r.status,
        "reasons": list(r.reasons),
        "checks": [_check_json(c) for c in r.checks],
        "qoe": None
        if r.qoe is None
        else {"model": r.qoe.model, "value": _r(r.qoe.value), "score_pct": _r(r.qoe.score, 2)},
        "composite": None
        if r.composite is None
        else {
            "score_pct": _r(r.composite.score, 2),
            "band": r.composite.band,
            "components": {name: {"score_pct": _r(v, 2), "weight": w} for name, v, w in r.composite.components},
        },
        "feedback": None
        if fb is None
        else {
            "responses": dict(fb.responses),
            "min_responses": fb.min_responses,
            "survey_mos": _r(fb.survey_mos),
            "csat_pct": _r(fb.csat_pct, 2),
            "nps": _r(fb.nps, 2),
            "score_pct": _r(fb.score, 2),
        },
        "perception_gap": r.perception_gap,
        "error_budget": r.error_budget.to_json(),
        "burn_rate_alerts": [a.to_json() for a in r.alerts],
        "users": r.users,
        "users_source": r.users_source,
        "severity": _r(r.severity),
        "impact": _r(r.impact),
        "samples": r.samples,
        "in_scope": r.in_scope,
    }


def to_json(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "ok": evaluation.status == "pass",
        "status": evaluation.status,
        "exit_code": exit_code(evaluation),
        "range": {
            "start": evaluation.start,
            "end": evaluation.end,
            "start_utc": iso(evaluation.start),
            "end_utc": iso(evaluation.end),
        },
        "summary": evaluation.counts(),
        "results": [result_json(r, i + 1) for i, r in enumerate(evaluation.results)],
        "notes": list(evaluation.notes),
    }


# --------------------------------------------------------------------------- terminal


def _headline(r: SegmentResult) -> str:
    """The check that explains the verdict best: a failed primary, else the first primary."""
    primary = [c for c in r.checks if c.primary]
    wanted = ("unknown", "not measured") if r.status == "unknown" else (r.status,)
    pick = next((c for c in primary if c.status in wanted), primary[0] if primary else None)
    return pick.describe() if pick else ""


SUMMARY_ROWS = 50  # above this many measured rows the terminal gets the summary, not the whole table


def _row_cells(rank: int, r: SegmentResult) -> tuple[str, ...]:
    qoe = "" if r.qoe is None else f"{SHORT.get(r.qoe.model, r.qoe.model)} {r.qoe.value:.2f}"
    comp = "" if r.composite is None else f"{r.composite.score:.0f} % {r.composite.band}"
    eb = r.error_budget
    target = "" if eb.compliance_pct is None else f"{eb.compliance_pct:.1f} %"
    if eb.unknown and eb.compliance_pct is not None:  # undecided windows: the share is a range
        target = f"{eb.compliance_low_pct:.1f}-{eb.compliance_high_pct:.1f} %"
    alerts = ", ".join(f"{a.severity} {a.factor}" for a in r.alerts if a.firing)
    status = f"[{STYLE[r.status]}]{r.status}[/]"
    return (str(rank), r.journey, r.segment.label, status, qoe, comp, _headline(r), target, alerts)


def _results_table(title: str, rows: list[tuple[int, SegmentResult]]) -> Table:
    table = Table(title=title, show_lines=False)
    for col in ("#", "journey", "segment", "status", "QoE", "composite", "decisive check", "in target", "alerts"):
        table.add_column(col, justify="right" if col in ("#", "QoE", "composite", "in target") else "left")
    for rank, r in rows:
        table.add_row(*_row_cells(rank, r))
    return table


def summary_counts(evaluation: Evaluation) -> list[tuple[str, int, int]]:
    """Per verdict, worst first: (verdict, journey x segment results, journeys with at least one)."""
    out = []
    for verdict in ("fail", "unknown", "pass"):
        mine = [r for r in evaluation.results if r.status == verdict]
        out.append((verdict, len(mine), len({r.journey for r in mine})))
    return out


def _counts_table(evaluation: Evaluation) -> Table:
    table = Table(title="results per verdict", show_lines=False)
    for col in ("verdict", "segments", "journeys"):
        table.add_column(col, justify="left" if col == "verdict" else "right")
    for verdict, segments, journeys in summary_counts(evaluation):
        table.add_row(f"[{STYLE[verdict]}]{verdict}[/]", str(segments), str(journeys))
    return table


def render_table(console: Console, evaluation: Evaluation, *, all_rows: bool = False) -> None:
    """The results for a terminal: every measured row, or above :data:`SUMMARY_ROWS` of them a summary.

    The summary shows the worst rows (out of target, then unknown; never passes) up to
    :data:`SUMMARY_ROWS`, the counts per verdict, and where the full table is (``--all-rows``, the
    JSON, HTML and JUnit reports always hold every row). Rendering thousands of rich rows took
    seconds, far longer than the evaluation itself.
    """
    measured = [(i + 1, r) for i, r in enumerate(evaluation.results) if r.samples or r.feedback]
    silent = [r for r in evaluation.results if not r.samples and not r.feedback]
    summary = not all_rows and len(measured) > SUMMARY_ROWS
    shown = [(k, r) for k, r in measured if r.status != "pass"][:SUMMARY_ROWS] if summary else measured
    if summary:
        if shown:
            title = f"qoectl verify: the {len(shown)} worst of {len(measured)} results (worst first)"
            console.print(_results_table(title, shown))
        console.print(_counts_table(evaluation))
    elif measured:
        console.print(_results_table("qoectl verify (worst first)", measured))
    by_journey: dict[str, list[str]] = {}
    for r in silent:
        by_journey.setdefault(r.journey, []).append(r.segment.label)
    for journey, segments in sorted(by_journey.items()):
        console.print(f"unknown: {journey}: no measurements at {', '.join(segments)}", style="yellow", markup=False)
    listed = {id(r) for _, r in shown} | {id(r) for r in silent}
    reasons: list[str] = []  # printed in one call: hundreds of console.print calls cost a tenth of a second
    for r in evaluation.results:
        if r.status == "fail" and id(r) in listed:
            reasons += [f"  {r.journey} @ {r.segment.label}: {reason}" for reason in r.reasons[1:]]
        if r.perception_gap:
            if reasons:
                console.print("\n".join(reasons), markup=False)
                reasons = []
            console.print(
                f"perception gap: {r.journey} @ {r.segment.label}: {r.perception_gap}", style="magenta", markup=False
            )
    if reasons:
        console.print("\n".join(reasons), markup=False)
    for note in evaluation.notes:
        console.print(f"note: {note}", style="dim", markup=False)
    if summary:
        console.print(
            f"showing {len(shown)} of {len(measured)} measured results: the full table is in --json, --html and "
            "--junit, or on the terminal with --all-rows",
            markup=False,
        )
    c = evaluation.counts()
    style = STYLE[evaluation.status]
    console.print(
        f"[bold {style}]{evaluation.status}[/]: {c['fail']} out of target, {c['unknown']} unknown, "
        f"{c['pass']} in target ({iso(evaluation.start) or '-'} .. {iso(evaluation.end) or '-'})"
    )


# --------------------------------------------------------------------------- JUnit XML


def junit_xml(evaluation: Evaluation) -> str:
    """One test case per journey x segment: failures fail, unknowns are skipped, never passed."""
    counts = evaluation.counts()
    root = ET.Element(
        "testsuites",
        name="qoectl verify",
        tests=str(len(evaluation.results)),
        failures=str(counts["fail"]),
        skipped=str(counts["unknown"]),
        errors="0",
    )
    by_journey: dict[str, list[SegmentResult]] = {}
    for r in evaluation.results:
        by_journey.setdefault(r.journey, []).append(r)
    stamp = iso(evaluation.end) or ""
    for journey in sorted(by_journey):
        cases = sorted(by_journey[journey], key=lambda r: r.segment)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"qoectl.verify.{journey}",
            tests=str(len(cases)),
            failures=str(sum(1 for r in cases if r.status == "fail")),
            skipped=str(sum(1 for r in cases if r.status == "unknown")),
            errors="0",
            timestamp=stamp.rstrip("Z"),
        )
        for r in cases:
            case = ET.SubElement(
                suite, "testcase", classname=f"qoectl.verify.{journey}", name=f"{journey} @ {r.segment.label}"
            )
            details = "\n".join(
                [*r.reasons, *(c.describe() for c in r.checks)]
                + ([f"perception gap: {r.perception_gap}"] if r.perception_gap else [])
            )
            if r.status == "fail":
                failure = ET.SubElement(case, "failure", message=r.reasons[0] if r.reasons else "out of target")
                failure.set("type", "out-of-target")
                failure.text = details
            elif r.status == "unknown":
                ET.SubElement(case, "skipped", message="unknown: " + (r.reasons[0] if r.reasons else "no verdict"))
            out = ET.SubElement(case, "system-out")
            out.text = details
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
