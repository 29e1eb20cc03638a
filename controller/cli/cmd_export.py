"""``qoectl export``: the policy's SLOs as Prometheus rules and a Grafana dashboard (docs/alerting.md).

Both read the compiled policy (a bad policy gets the usual file:line errors
and exit 1) and write one file, byte-identical for the same policy. Journeys
Prometheus cannot judge as ``qoectl verify`` does are named on stderr (or in
``--json``) with the reason, never left out silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from controller.cli import common
from controller.cli.policy_path import policy_path

if TYPE_CHECKING:
    from controller.export.sli import Note

INTERVAL_HELP = "Rule evaluation interval: the step qoectl verify --prometheus queries at."


def register(cli: click.Group) -> None:
    cli.add_command(export)


@click.group()
def export() -> None:
    """Export the journeys' SLOs to the alerting and dashboards people already use."""


def _interval(value: str) -> float:
    from controller.cli.cmd_verify import _duration

    seconds = _duration(value, "--interval") or 60.0
    return seconds


def _finish(out_file: Path, text: str, journeys: list[str], notes: tuple[Note, ...], as_json: bool) -> None:
    from controller.cli.cmd_verify import _write

    _write(out_file, text, as_json)
    if as_json:
        common.emit_json(
            {"ok": True, "out": str(out_file), "journeys": journeys, "notes": [n.to_json() for n in notes]}
        )
        return
    for note in notes:
        common.err.print(f"note: {note.text()}", style="yellow", markup=False, soft_wrap=True)
    common.err.print(f"{len(journeys)} journey(s) exported to {out_file}, {len(notes)} note(s)", markup=False)


@export.command("prometheus-rules")
@policy_path()
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path, dir_okay=False), help="Write here.")
@click.option("--interval", default="1m", show_default=True, help=INTERVAL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the exported journeys and the notes as JSON.")
def prometheus_rules(path: Path, out_file: Path, interval: str, as_json: bool) -> None:
    """Recording rules for each journey's SLI and multi-window burn-rate alerts (page, ticket) into --out.

    PATH is the policy repository (default: policies). The objective, windows and
    burn-rate factors are qoectl verify's, so the alerts agree with it.
    Load the file with promtool check rules FILE, then rule_files: in prometheus.yml.
    Exit 0: written (notes name journeys without rules); 1: bad policy or unwritable file.
    """
    from controller.export.prometheus import rule_file

    seconds = _interval(interval)
    result = rule_file(common.build_or_exit(path, as_json), seconds)
    _finish(out_file, result.text(), list(result.journeys), result.notes, as_json)


@export.command("grafana-dashboard")
@policy_path()
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path, dir_okay=False), help="Write here.")
@click.option("--title", default="qoectl journeys", show_default=True, help="Dashboard title.")
@click.option("--json", "as_json", is_flag=True, help="Print the exported journeys and the notes as JSON.")
def grafana_dashboard(path: Path, out_file: Path, title: str, as_json: bool) -> None:
    """A Grafana dashboard (JSON), one row per journey: QoE score, target, windows in target, burn rate.

    Its panels query the series of qoectl export prometheus-rules; pick the
    Prometheus data source in its datasource variable.
    Exit 0: written; 1: bad policy or unwritable file.
    """
    from controller.export.grafana import dashboard

    result = dashboard(common.build_or_exit(path, as_json), title)
    _finish(out_file, result.text(), list(result.journeys), result.notes, as_json)
