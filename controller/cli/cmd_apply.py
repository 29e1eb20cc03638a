"""``qoectl apply``: the CLI face of :mod:`controller.apply` (options, output, exit codes).

Exit codes for CI: 0 every device ok; 1 any device failed, was rolled back or
skipped, or the run could not start (bad option, lock held, policy errors);
2 with ``--detailed-exitcode`` when devices changed (or would change, with
``--dry-run``), like ``terraform apply/plan -detailed-exitcode``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from controller.apply import (
    ApplyOptions,
    DeviceResult,
    FleetResult,
    HostKeyPolicy,
    LockedError,
    Timeouts,
    UsageError,
    parse_shard,
    rendered_from,
    run,
)
from controller.apply.secrets import redact
from controller.cli import common
from controller.cli.console import make_console

EXIT_ERROR = 1
STYLE = {
    "changed": "green",
    "unchanged": "dim",
    "would_change": "yellow",
    "failed": "bold red",
    "rolled_back": "red",
    "skipped": "magenta",
}

out = make_console()
err = make_console(stderr=True)


def _fail(message: str, as_json: bool) -> None:
    message = redact(message)
    if as_json:
        click.echo(json.dumps({"ok": False, "error": message}, indent=2, sort_keys=True))
    else:
        for line in message.splitlines():
            err.print(f"error: {line}", style="red", markup=False)
    raise SystemExit(EXIT_ERROR)


@contextmanager
def _progress(enabled: bool) -> Iterator[tuple[Callable[[int], None], Callable[[DeviceResult], None]]]:
    """A fleet progress bar on stderr (only on a terminal); yields (on_start, on_result)."""
    if not enabled or not err.is_terminal:
        yield (lambda n: None), (lambda r: None)
        return
    with Progress(
        TextColumn("applying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def start(n: int) -> None:
            bar.update(task, total=n)

        def done(r: DeviceResult) -> None:
            bar.update(task, advance=1, description=f"{r.device}: {r.status}")

        yield start, done


def _print_result(result: FleetResult, show_diff: bool) -> None:
    if show_diff:
        for r in result.results:
            if r.diff and r.status != "unchanged":
                out.print(f"[bold]# {r.device}[/bold] ({r.platform}, {r.host})")
                for line in r.diff.splitlines():
                    style = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1], "")
                    out.print(line, style=style, markup=False)
    title = "qoectl apply --dry-run" if result.dry_run else "qoectl apply"
    table = Table(title=title)
    for col in ("device", "platform", "status", "left in", "+", "-", "sent", "time"):
        table.add_column(col, justify="right" if col in ("+", "-", "sent", "time") else "left", no_wrap=True)
    for r in result.results:
        table.add_row(
            r.device,
            r.platform,
            f"[{STYLE[r.status]}]{r.status.replace('_', ' ')}[/]",
            r.left_in,
            str(r.added),
            str(r.removed),
            str(len(r.commands)),
            f"{r.duration_s:.1f}s",
        )
    out.print(table)
    for r in result.results:
        if r.error and r.status != "skipped":
            out.print(f"{r.status.replace('_', ' ')}: {r.error}", markup=False, style=STYLE[r.status])
        if r.rollback:
            out.print(f"  {r.device}: {r.rollback}", markup=False, style="yellow")
    parts = [f"{n} {s.replace('_', ' ')}" for s, n in result.counts.items() if n]
    out.print(f"[bold]{', '.join(parts) or 'no devices'}[/bold]; run folder: {result.run_dir}", markup=True)
    if result.stopped:
        out.print(result.stopped, style="bold red", markup=False)
    for note in result.notes:
        out.print(f"note: {note}", style="yellow", markup=False)


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("path", default="policies", type=click.Path(path_type=Path))
    @click.option(
        "--out",
        "out_dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="Apply the configs rendered into this folder by 'qoectl plan --out' (default: render now).",
    )
    @click.option("--run-dir", type=click.Path(path_type=Path, file_okay=False), help="Run folder (backups, audit).")
    @click.option("--dry-run", is_flag=True, help="Read and diff only; send nothing.")
    @click.option(
        "--limit",
        multiple=True,
        help="Only these devices: names or globs, site:NAME, tag:NAME; comma-separated or repeated.",
    )
    @click.option("--workers", type=click.IntRange(1, 256), default=5, show_default=True, help="SSH sessions at once.")
    @click.option("--canary", type=click.IntRange(0), default=0, show_default=True, help="Apply to N devices first.")
    @click.option("--shard", help="K/N: only this deterministic share of the selected devices (CI matrix).")
    @click.option(
        "--on-failure",
        type=click.Choice(["stop", "continue"]),
        default="stop",
        show_default=True,
        help="After a device fails: start no new device (stop) or carry on (continue). "
        "A --dry-run always reports every device.",
    )
    @click.option(
        "--known-hosts",
        type=click.Path(path_type=Path, dir_okay=False),
        default=lambda: os.path.expanduser("~/.ssh/known_hosts"),
        show_default="~/.ssh/known_hosts",
        help="Host keys are verified against this file.",
    )
    @click.option(
        "--accept-new-host-keys",
        is_flag=True,
        help="Labs only: add unknown host keys to --known-hosts (changed keys are still refused).",
    )
    @click.option("--connect-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
    @click.option("--command-timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True)
    @click.option(
        "--confirm-timeout",
        type=click.IntRange(5),
        default=120,
        show_default=True,
        help="Seconds an unconfirmed change lives before the device restores its backup by itself.",
    )
    @click.option(
        "--lock-dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="Where device locks live (default: $QOECTL_LOCK_DIR or a per-user temp folder).",
    )
    @click.option("--diff/--no-diff", "show_diff", default=True, show_default=True, help="Print the diffs.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")
    @click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when devices changed (or would change).")
    def apply(
        path: Path,
        out_dir: Path | None,
        run_dir: Path | None,
        dry_run: bool,
        limit: tuple[str, ...],
        workers: int,
        canary: int,
        shard: str | None,
        on_failure: str,
        known_hosts: Path,
        accept_new_host_keys: bool,
        connect_timeout: float,
        command_timeout: float,
        confirm_timeout: int,
        lock_dir: Path | None,
        show_diff: bool,
        as_json: bool,
        detailed_exitcode: bool,
    ) -> None:
        """Apply the QoS configs to the devices over SSH: diff, back up, push, verify, or roll back.

        Exit 0: ok; 1: a device failed (or the run could not start); 2: changes, with --detailed-exitcode.
        """

        try:
            part = parse_shard(shard) if shard else None
        except UsageError as exc:
            _fail(str(exc), as_json)
        result_build = common.build_or_exit(path, as_json)
        options = ApplyOptions(
            host_keys=HostKeyPolicy(
                known_hosts=Path(os.path.expanduser(str(known_hosts))), accept_new=accept_new_host_keys
            ),
            dry_run=dry_run,
            workers=workers,
            canary=canary,
            on_failure="continue" if on_failure == "continue" else "stop",
            timeouts=Timeouts(connect=connect_timeout, command=command_timeout),
            confirm_s=confirm_timeout,
        )
        fleet: FleetResult | None = None
        try:
            rendered = rendered_from(result_build.plans, out_dir)
            with _progress(not as_json) as (on_start, on_result):
                fleet = run(
                    result_build.policy.devices,
                    rendered,
                    options,
                    limit=limit,
                    part=part,
                    run_dir=run_dir,
                    lock_dir=lock_dir,
                    on_start=on_start,
                    on_result=on_result,
                    argv=sys.argv[1:],
                    controllers=result_build.policy.sdwan_controllers,
                )
        except (UsageError, LockedError) as exc:
            _fail(str(exc), as_json)
        assert fleet is not None
        if as_json:
            data: dict[str, Any] = fleet.to_json()
            data["exit_code"] = fleet.exit_code(detailed_exitcode)
            click.echo(json.dumps(data, indent=2, sort_keys=True))
        else:
            _print_result(fleet, show_diff)
        raise SystemExit(fleet.exit_code(detailed_exitcode))
