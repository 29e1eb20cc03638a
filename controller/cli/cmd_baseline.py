"""``qoectl baseline record``: what each journey x segment measures under normal operation, for later comparison.

``qoectl verify --baseline FILE`` compares a later range with it (better / same /
worse per segment, with the figures); see :mod:`controller.evaluate.baseline`.
"""

from __future__ import annotations

from pathlib import Path

import click

from controller.cli import common
from controller.cli.options import FILE, source_options
from controller.cli.policy_path import policy_path


def register(cli: click.Group) -> None:
    cli.add_command(baseline)


@click.group()
def baseline() -> None:
    """Baselines: the measured distribution per journey x segment under normal operation."""


@baseline.command("record")
@policy_path()
@source_options(feedback=False, verb="Record")
@click.option("--journey", "journeys", multiple=True, help="Only this journey. Repeat for more.")
@click.option("--out", "out_file", required=True, type=FILE, help="Write here.")
@click.option("--json", "as_json", is_flag=True, help="Print the baseline as JSON on stdout too.")
def record(
    path: Path,
    measurement_files: tuple[Path, ...],
    prometheus_url: str | None,
    since: str | None,
    until: str | None,
    step: str,
    journeys: tuple[str, ...],
    out_file: Path,
    as_json: bool,
) -> None:
    """Record per journey x segment the count, mean, p50, p90 and p99 of every measured metric into --out.

    PATH is the policy repository (default: policies). Record a range of normal
    operation (not an idle lab): later ranges are judged against it.
    Exit 0: recorded; 1: bad input or nothing to record.
    """
    import dataclasses

    from controller.cli.cmd_verify import _write, read_measured
    from controller.evaluate import baseline as bl

    if not measurement_files and not prometheus_url:
        raise click.UsageError("give --measurements FILE, --prometheus URL, or both")
    got = read_measured(path, measurement_files, prometheus_url, (), since, until, step, as_json)
    recorded = bl.record(got.samples, got.vocab, got.start, got.end)
    if journeys:
        unknown = sorted(set(journeys) - set(got.vocab.journeys))
        if unknown:
            raise click.BadParameter(f"not in the policy: {', '.join(unknown)}", param_hint="--journey")
        kept = {k: v for k, v in recorded.segments.items() if k[0] in journeys}
        recorded = dataclasses.replace(recorded, segments=kept)
    if not recorded.segments:
        message = "no samples of a metric with a distribution in the range: nothing recorded"
        if as_json:
            common.emit_json({"ok": False, "error": message})
        else:
            common.err.print(f"error: {message}", style="red", markup=False)
        raise SystemExit(common.EXIT_ERROR)
    _write(out_file, recorded.text(), as_json)
    if as_json:
        common.emit_json({"ok": True, "out": str(out_file), **recorded.to_json()})
        return
    samples = sum(d.count for metrics in recorded.segments.values() for d in metrics.values())
    common.out.print(
        f"recorded {len(recorded.segments)} journey x segment(s), {samples} samples, into {out_file}", markup=False
    )
