"""``qoectl qoe apdex`` and ``qoectl qoe stalls``: the web and video QoE models for quick answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from controller.cli import common
from controller.qoe import apdex as apdex_model
from controller.qoe import stalls as stall_model


def _read_response_times(path: Path) -> tuple[list[float | None], list[str]]:
    """One response time in ms per line, or ``error``; blank lines and ``#`` comments are skipped."""
    from controller.load.loader import display_path

    name = display_path(path)
    values: list[float | None] = []
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{name}: cannot read the file: {exc}; hint: give a UTF-8 text file"]
    for number, line in enumerate(text.splitlines(), start=1):
        word = line.split("#", 1)[0].strip()
        if not word:
            continue
        if word.lower() == "error":
            values.append(None)
            continue
        try:
            value = float(word)
        except ValueError:
            value = float("nan")
        if not (value >= 0 and value != float("inf")):
            problems.append(
                f"{name}:{number}:1: {word!r} is not a response time; "
                "hint: one number of milliseconds (>= 0) per line, or 'error' for a failed request"
            )
            continue
        values.append(value)
    if not values and not problems:
        problems.append(f"{name}: no response times in the file; hint: one number of milliseconds per line")
    return values, problems


def _fail(messages: list[str], as_json: bool) -> None:

    if as_json:
        common.emit_json({"ok": False, "errors": messages})
    else:
        for message in messages:
            common.err.print(message, style="red", markup=False)
    raise SystemExit(common.EXIT_ERROR)


def register(cli: click.Group) -> None:
    qoe = cli.commands["qoe"]
    assert isinstance(qoe, click.Group)

    @qoe.command()
    @click.option("--threshold-ms", type=click.FloatRange(min=0, min_open=True), required=True, help="Apdex T.")
    @click.option(
        "--samples-file",
        type=click.Path(path_type=Path, dir_okay=False),
        required=True,
        help="One response time in ms per line; 'error' for a failed request.",
    )
    @click.option(
        "--errors-frustrated/--errors-ignored",
        default=True,
        show_default=True,
        help="Count failed requests as frustrated (the Apdex specification) or leave them out.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
    def apdex(threshold_ms: float, samples_file: Path, errors_frustrated: bool, as_json: bool) -> None:
        """Apdex score and rating of response times (Apdex Alliance specification)."""

        values, problems = _read_response_times(samples_file)
        if problems:
            _fail(problems, as_json)
        try:
            result = apdex_model.apdex(values, threshold_ms, errors_frustrated)
        except ValueError as exc:
            _fail([f"{samples_file}: {exc}; hint: give successful requests, or count errors as frustrated"], as_json)
            return
        data: dict[str, Any] = {
            "apdex": round(result.score, 4),
            "rating": result.rating,
            "threshold_ms": threshold_ms,
            "satisfied": result.satisfied,
            "tolerating": result.tolerating,
            "frustrated": result.frustrated,
            "errors": result.errors,
            "total": result.total,
            "errors_frustrated": errors_frustrated,
        }
        if as_json:
            common.emit_json(data)
            return
        common.out.print(
            f"Apdex({threshold_ms:g} ms) = {result.score:.2f} {result.rating}  "
            f"({result.satisfied} satisfied, {result.tolerating} tolerating, {result.frustrated} frustrated"
            f"{f', of them {result.errors} errors' if errors_frustrated and result.errors else ''}"
            f" of {result.total})",
            markup=False,
        )

    @qoe.command()
    @click.option(
        "--duration-s", type=click.FloatRange(min=0, min_open=True), required=True, help="Media duration T played."
    )
    @click.option(
        "--stall",
        "stall_texts",
        multiple=True,
        metavar="POS:LEN",
        help="A stall at media position POS (s) lasting LEN (s); 0:LEN is the initial loading. Repeat it.",
    )
    @click.option("--max-startup-s", type=click.FloatRange(min=0), help="Check the start-up (stall at 0) against this.")
    @click.option("--max-rebuffering-pct", type=click.FloatRange(min=0, max=100), help="Check the rebuffering ratio.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
    def stalls(
        duration_s: float,
        stall_texts: tuple[str, ...],
        max_startup_s: float | None,
        max_rebuffering_pct: float | None,
        as_json: bool,
    ) -> None:
        """Stall score (1-5) of a video session: the ITU-T P.1203.3 stalling model.

        Exit 1 when a given --max-startup-s or --max-rebuffering-pct is exceeded.
        """

        events = []
        problems = []
        for text in stall_texts:
            try:
                event = stall_model.parse_stall(text)
            except ValueError as exc:
                problems.append(f"--stall: {exc}")
                continue
            if stall_model.after_end(duration_s, [event]):
                problems.append(
                    f"--stall: {text!r} is at {event.position_s:g} s, after the end of the media ({duration_s:g} s); "
                    "hint: positions are media time within --duration-s"
                )
            events.append(event)
        if problems:
            _fail(problems, as_json)
        result = stall_model.stall_score(duration_s, events)
        checks: dict[str, Any] = {}
        if max_startup_s is not None:
            checks["startup_s"] = {
                "measured": result.startup_s,
                "max": max_startup_s,
                "pass": result.startup_s <= max_startup_s,
            }
        if max_rebuffering_pct is not None:
            checks["rebuffering_pct"] = {
                "measured": round(result.rebuffering_pct, 4),
                "max": max_rebuffering_pct,
                "pass": result.rebuffering_pct <= max_rebuffering_pct,
            }
        ok = all(c["pass"] for c in checks.values())
        data = {
            "stall_score": round(result.stall_score, 4),
            "stalling_impact": round(result.stalling_impact, 6),
            "stalls": result.stalls,
            "weighted_length_s": round(result.weighted_length_s, 4),
            "mean_interval_s": round(result.mean_interval_s, 4),
            "duration_s": duration_s,
            "startup_s": result.startup_s,
            "rebuffering_s": result.rebuffering_s,
            "rebuffering_pct": round(result.rebuffering_pct, 4),
            "ignored_stalls": result.ignored,
            "checks": checks,
            "ok": ok,
        }
        if as_json:
            common.emit_json(data)
        else:
            common.out.print(
                f"stall score = {result.stall_score:.2f} (1-5; SI {result.stalling_impact:.3f}, {result.stalls} "
                f"stall(s), weighted length {result.weighted_length_s:.2f} s); start-up {result.startup_s:g} s, "
                f"rebuffering {result.rebuffering_pct:.2f} %",
                markup=False,
            )
            for name, c in checks.items():
                verdict = "ok" if c["pass"] else "over"
                common.out.print(f"{name}: {c['measured']:g} {verdict} (max {c['max']:g})", markup=False)
            if result.ignored:
                common.out.print(f"note: {result.ignored} stall(s) of zero length left out", markup=False)
        if not ok:
            raise SystemExit(common.EXIT_ERROR)
