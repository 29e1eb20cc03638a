"""``qoectl verify`` (measured outcomes against the journey targets) and ``qoectl probe`` (active probes).

Exit codes of ``verify``: 0 every journey in target; 1 a journey out of
target, or bad input (policy or measurement data); 3 nothing out of target
but something could not be confirmed (no data is not a pass).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from controller.cli import common
from controller.cli.options import FILE, source_options
from controller.cli.policy_path import policy_path

if TYPE_CHECKING:
    from controller.errors import Diagnostic
    from controller.evaluate.baseline import Baseline
    from controller.measure.feedback import Answer
    from controller.measure.prefetch import Prefetch
    from controller.measure.samples import SampleSet, Vocabulary
    from controller.measure.sources import SourceOptions
    from controller.pipeline import Build

DURATION = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _duration(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    m = DURATION.match(value.strip())
    if not m:
        raise click.BadParameter(f"{value!r} is not a duration; write e.g. 30m, 6h or 3d", param_hint=option)
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _time(value: str | None) -> float | None:
    from controller.measure.samples import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a time; give seconds since the epoch or ISO 8601 with an offset", param_hint="--until"
        ) from None


def _name(value: str | None, option: str) -> str | None:
    if value is not None and not NAME.match(value):
        raise click.BadParameter(f"{value!r}: use letters, digits, '-', '_' and '.'", param_hint=option)
    return value


def _host_port(value: str, option: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r}: write ADDRESS:PORT, e.g. 198.18.0.2:40000", param_hint=option)
    return host, int(port)


def source_opts(
    measurement_files: tuple[Path, ...],
    prometheus_url: str | None,
    feedback_files: tuple[Path, ...],
    since: str | None,
    until: str | None,
    step: str,
) -> SourceOptions:
    """The options as :class:`controller.measure.sources.SourceOptions`; a bad one raises click.BadParameter."""
    from controller.measure.prometheus import check_url
    from controller.measure.sources import SourceOptions

    if prometheus_url:
        problem = check_url(prometheus_url)
        if problem:
            raise click.BadParameter(problem, param_hint="--prometheus")
    since_s = _duration(since, "--since")
    step_s = _duration(step, "--step") or 60.0
    return SourceOptions(measurement_files, prometheus_url, feedback_files, since_s, _time(until), step_s)


def register(cli: click.Group) -> None:
    cli.add_command(verify)
    cli.add_command(probe)


@dataclass
class Measured:
    """What ``verify`` and ``baseline record`` read: the policy, the samples and feedback, the range."""

    build: Build
    vocab: Vocabulary
    samples: SampleSet
    answers: list[Answer]
    diagnostics: list[Diagnostic]
    start: float | None
    end: float | None
    now: float


def read_measured(
    path: Path,
    measurement_files: tuple[Path, ...],
    prometheus_url: str | None,
    feedback_files: tuple[Path, ...],
    since: str | None,
    until: str | None,
    step: str,
    as_json: bool,
    prefetched: tuple[Prefetch | None, ...] = (),
) -> Measured:
    """Build the policy and read every measurement source; bad input is reported and exits 1.

    ``prefetched``: the files' parses, started by the caller (:func:`controller.measure.prefetch.prefetch`).
    """
    from controller.errors import errors_only, sort_diagnostics
    from controller.measure.prefetch import prefetch
    from controller.measure.samples import Vocabulary
    from controller.measure.sources import read_sources

    opts = source_opts(measurement_files, prometheus_url, feedback_files, since, until, step)
    # CSV files are parsed in threads while the policy loads: the parse needs no policy, only its check does.
    opts = dataclasses.replace(opts, prefetched=prefetched or prefetch(opts.files))
    result = common.build_or_exit(path, as_json)
    now = time.time()
    vocab = Vocabulary(result.policy)
    got = read_sources(opts, result.policy, vocab, now)
    diags = list(got.diagnostics)
    if errors_only(diags):
        common.report_failure(sort_diagnostics(diags) if len(diags) < 200 else diags, as_json)
        if not as_json:
            common.err.print("measurement data has errors: nothing was evaluated", style="bold red")
        raise SystemExit(common.EXIT_ERROR)
    if not as_json:
        common.print_diagnostics(diags)
    samples, answers, start, end = got.samples, list(got.answers), got.start, got.end
    return Measured(result, vocab, samples, answers, diags, start, end, now)


def read_baseline(file: Path | None, as_json: bool) -> Baseline | None:
    """The ``--baseline`` file, or one error line and exit 1."""
    from controller.evaluate.baseline import BaselineError, read

    if file is None:
        return None
    try:
        return read(file)
    except BaselineError as exc:
        if as_json:
            common.emit_json({"ok": False, "error": str(exc)})
        else:
            common.err.print(f"error: --baseline {exc}", style="red", markup=False, soft_wrap=True)
        raise SystemExit(common.EXIT_ERROR) from None


@click.command()
@policy_path(alias=True)
@source_options()
@click.option("--journey", "journeys", multiple=True, help="Only this journey. Repeat for more.")
@click.option(
    "--baseline",
    "baseline_file",
    type=FILE,
    help="Compare each segment with this baseline (qoectl baseline record): better, same or worse.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.option("--junit", "junit_file", type=FILE, help="Write JUnit XML here.")
@click.option("--html", "html_file", type=FILE, help="Write an HTML report here.")
@click.option(
    "--all-rows",
    is_flag=True,
    help="Print every result row (by default a long result prints its worst rows and the counts per verdict).",
)
def verify(
    path: Path,
    measurement_files: tuple[Path, ...],
    prometheus_url: str | None,
    feedback_files: tuple[Path, ...],
    since: str | None,
    until: str | None,
    step: str,
    journeys: tuple[str, ...],
    baseline_file: Path | None,
    as_json: bool,
    junit_file: Path | None,
    html_file: Path | None,
    all_rows: bool,
) -> None:
    """Verify measured experience against every journey's targets, per site and context.

    PATH is the policy repository (default: policies).

    Exit 0: all in target; 1: a journey out of target or bad input; 3: nothing out
    of target, but some journey or site could not be confirmed (no data is not a pass).
    With --baseline, each segment's change against it is reported too (it does not
    change the exit code).
    """
    from controller.measure.prefetch import prefetch

    if not measurement_files and not prometheus_url and not feedback_files:
        raise click.UsageError("give --measurements FILE, --prometheus URL, or both (and optionally --feedback)")
    early = prefetch(measurement_files)  # parsed in threads while the rest imports and the policy loads

    from controller.evaluate import baseline as bl
    from controller.evaluate import report
    from controller.evaluate.engine import Options, evaluate
    from controller.evaluate.html import render_html
    from controller.pipeline import bulk_allocation

    # Reading and judging a large file allocate many small objects that all stay alive and hold no cycles:
    # the collector would scan them again and again for nothing (1M samples: ~0.1 s CPU).
    with bulk_allocation():
        before = read_baseline(baseline_file, as_json)
        got = read_measured(path, measurement_files, prometheus_url, feedback_files, since, until, step, as_json, early)
        options = Options(start=got.start, end=got.end, now=got.now, journeys=journeys)
        evaluation = evaluate(got.build, got.samples, got.answers, options)
        changes: tuple[bl.SegmentComparison, ...] = ()
        if before is not None:
            now_figures = bl.record(got.samples, got.vocab, evaluation.start, evaluation.end)
            keys = {bl.segment_key(r.journey, r.segment) for r in evaluation.results}
            keys |= {k for k in before.segments if not journeys or k[0] in journeys}
            changes = bl.compare(before, now_figures, only=keys)
        if junit_file:
            _write(junit_file, report.junit_xml(evaluation), as_json)
        if html_file:
            _write(html_file, render_html(evaluation), as_json)
        if as_json:
            data: dict[str, Any] = report.to_json(evaluation)
            data["diagnostics"] = [d.to_json() for d in got.diagnostics]
            if before is not None:
                by_key = {c.key: c.change for c in changes}
                for r, row in zip(evaluation.results, data["results"], strict=True):
                    row["baseline_change"] = by_key.get(bl.segment_key(r.journey, r.segment))
                data["baseline"] = bl.comparison_json(str(baseline_file), changes)
            common.emit_json(data)
        else:
            report.render_table(common.out, evaluation, all_rows=all_rows)
            if before is not None:
                bl.render_table(common.out, changes, str(baseline_file))
    raise SystemExit(report.exit_code(evaluation))


def _write(target: Path, text: str, quiet: bool) -> None:

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        common.err.print(f"{target}: cannot write: {exc.strerror}", style="red", markup=False)
        raise SystemExit(common.EXIT_ERROR) from None
    if not quiet:
        common.err.print(f"wrote {target}", markup=False)


# --------------------------------------------------------------------------- probes


@click.group()
def probe() -> None:
    """Active probes: a voice-like UDP stream and HTTP transactions (samples for qoectl verify)."""


def _where(site: str | None, context: str | None) -> None:
    if not site and not context:
        raise click.UsageError("give --site (or --context): where the users of the measured journey are")


@probe.command("voice-receive")
@click.option("--listen", required=True, help="ADDRESS:PORT to receive the probe stream on.")
@click.option("--journey", required=True, help="Journey the samples are for.")
@click.option("--site", help="Site the receiver stands for.")
@click.option("--context", help="Context, for receivers without a site.")
@click.option("--timeout-s", type=click.FloatRange(min=0.1), default=60.0, show_default=True)
@click.option("--idle-s", type=click.FloatRange(min=0.1), default=2.0, show_default=True, help="Stop after this quiet.")
@click.option("--interval-s", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Sample interval.")
@click.option("--out", "out_file", type=FILE, help="Write samples (JSON) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def voice_receive(
    listen: str,
    journey: str,
    site: str | None,
    context: str | None,
    timeout_s: float,
    idle_s: float,
    interval_s: float,
    out_file: Path | None,
    as_json: bool,
) -> None:
    """Receive a probe stream: one-way delay, RFC 3550 jitter, loss, reordering and the DSCP seen."""
    from controller.measure import probes

    _name(journey, "--journey")
    _name(site, "--site")
    _name(context, "--context")
    _where(site, context)
    host, port = _host_port(listen, "--listen")
    try:
        sock = probes.open_receiver(host, port)
    except probes.ProbeError as exc:
        common.err.print(str(exc), style="red", markup=False)
        raise SystemExit(common.EXIT_ERROR) from None
    with sock:
        common.err.print(f"listening on {host}:{port}", markup=False)
        sys.stderr.flush()
        arrivals, kernel = probes.receive_voice(sock, timeout_s=timeout_s, idle_s=idle_s)
    try:
        result = probes.analyse(arrivals, interval_s, kernel)
    except probes.ProbeError as exc:
        common.err.print(str(exc), style="red", markup=False)
        raise SystemExit(common.EXIT_ERROR) from None
    if out_file:
        probes.write_samples(out_file, probes.voice_samples(result, journey, site, context))
    summary = result.summary()
    if as_json:
        common.emit_json(summary)
    else:
        dscps = ", ".join(f"{k}: {v}" for k, v in summary["dscp_seen"].items()) or "-"
        common.out.print(
            f"received {result.received}/{result.count} (loss {result.loss_pct:.2f} %, reordered "
            f"{result.reordered}), one-way {result.one_way_delay_ms:.2f} ms, jitter {result.jitter_ms:.2f} ms, "
            f"DSCP seen {dscps}",
            markup=False,
        )


@probe.command("voice-send")
@click.option("--to", "target", required=True, help="ADDRESS:PORT of the receiver.")
@click.option("--count", type=click.IntRange(min=1, max=10_000_000), default=500, show_default=True)
@click.option("--rate-pps", type=click.FloatRange(min=0.1, max=100_000), default=50.0, show_default=True)
@click.option("--dscp", default="ef", show_default=True, help="DSCP name (ef, af41, cs1 ...) or 0-63.")
@click.option("--size", type=click.IntRange(min=36, max=1472), default=172, show_default=True, help="UDP payload.")
def voice_send(target: str, count: int, rate_pps: float, dscp: str, size: int) -> None:
    """Send RTP-sized probe packets (G.711, 20 ms: 172 bytes at 50/s) marked with DSCP."""
    from controller.measure import probes
    from controller.spec.types import DSCP_NAMES

    value = DSCP_NAMES.get(dscp.lower(), int(dscp) if dscp.isdigit() else -1)
    if not 0 <= value <= 63:
        raise click.BadParameter(f"{dscp!r}: use ef, af11-af43, cs0-cs7, le, default or 0-63", param_hint="--dscp")
    host, port = _host_port(target, "--to")
    try:
        sent = probes.send_voice(host, port, count=count, rate_pps=rate_pps, dscp=value, size=size)
    except probes.ProbeError as exc:
        common.err.print(str(exc), style="red", markup=False)
        raise SystemExit(common.EXIT_ERROR) from None
    common.out.print(f"sent {sent} of {count} packets to {host}:{port} at {rate_pps:g}/s, DSCP {value}", markup=False)


@probe.command("http")
@click.argument("url")
@click.option("--journey", required=True, help="Journey the samples are for.")
@click.option("--site", help="Site the probe stands for.")
@click.option("--context", help="Context, for probes without a site.")
@click.option("--count", type=click.IntRange(min=1, max=100_000), default=10, show_default=True)
@click.option("--interval-s", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--timeout-s", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@click.option("--out", "out_file", type=FILE, help="Write samples (JSON) here.")
@click.option("--threshold-ms", type=click.FloatRange(min=0, min_open=True), help="Also print the Apdex for this T.")
def http(
    url: str,
    journey: str,
    site: str | None,
    context: str | None,
    count: int,
    interval_s: float,
    timeout_s: float,
    out_file: Path | None,
    threshold_ms: float | None,
) -> None:
    """Time COUNT HTTP transactions (new connection each, whole body): response times and errors for Apdex."""
    from controller.measure import probes
    from controller.qoe.apdex import apdex

    _name(journey, "--journey")
    _name(site, "--site")
    _name(context, "--context")
    _where(site, context)
    try:
        done = probes.http_probe(url, count=count, interval_s=interval_s, timeout_s=timeout_s)
    except probes.ProbeError as exc:
        common.err.print(str(exc), style="red", markup=False)
        raise SystemExit(common.EXIT_ERROR) from None
    if out_file:
        probes.write_samples(out_file, probes.http_samples(done, journey, site, context))
    ok = [t.response_time_ms for t in done if t.response_time_ms is not None]
    line = f"{len(ok)}/{len(done)} ok"
    if ok:
        line += f", mean {sum(ok) / len(ok):.1f} ms, max {max(ok):.1f} ms"
    if threshold_ms:
        a = apdex([t.response_time_ms for t in done], threshold_ms)
        line += f", Apdex({threshold_ms:g} ms) {a.score:.2f} {a.rating}"
    common.out.print(line, markup=False)
