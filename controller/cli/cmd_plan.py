"""``qoectl plan``: compile and render every device into ``--out`` and show what changed.

Exit 0: nothing changed; 2: changes; 1: errors (like ``terraform plan -detailed-exitcode``).
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from controller.cli import common
from controller.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    err,
    json_opt,
    out,
    policy_arg,
    report_failure,
)
from controller.cli.options import FILE
from controller.cli.plan_report import json_streamed, markdown_plan, print_plan
from controller.compile.budgets import Budget
from controller.errors import PolicyError
from controller.load.loader import load_policy
from controller.parallel import default_jobs
from controller.pipeline import DeviceOutput, FleetRun, bulk_allocation, render_fleet, validate_policy
from controller.plan import DevicePlan
from controller.render import incremental, tree
from controller.render.outputs import DeviceChange, DiffSpool, compare_device, write_device


def register(cli: click.Group) -> None:
    cli.add_command(plan)


@contextmanager
def _progress(total: int, label: str) -> Iterator[Any]:
    """A progress bar on stderr for fleets big enough to wait for; silent otherwise.

    Redrawn on each advance rather than by rich's refresh thread: ``plan`` forks
    worker processes while the bar is shown, and a fork should not happen while
    another thread may hold the console's locks.
    """
    if total < 50 or not err.is_terminal:
        yield lambda n=1: None
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        auto_refresh=False,
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)
            bar.refresh()

        yield advance


def _missing_parents(path: Path) -> list[Path]:
    """``path``'s ancestors that do not exist yet, nearest first (removed again when a plan fails)."""
    return [p for p in path.resolve().parents if not p.exists()]


def _remove_empty(dirs: list[Path]) -> None:
    for d in dirs:  # nearest first, so a parent is empty once its child is gone
        try:
            d.rmdir()
        except OSError:
            return


# A device's change, its files' SHA-256 and, when the plan keeps a cache, their stats where they were written
Written = tuple[DeviceChange, dict[str, str], dict[str, incremental.Stat] | None]


def _claim_outputs(
    path: Path, out_dir: Path, baseline: Path | None
) -> tuple[tree.Manifest | None, tree.Manifest | None]:
    """The manifests of ``--out`` and of the baseline; one line and exit 1 when qoectl may not use them."""
    try:
        current = tree.claim(out_dir, path)
        if baseline is None:
            return current, current
        if not baseline.is_dir():
            raise tree.OutputFolderError(f"--baseline {baseline}: does not exist or is not a folder")
        before = tree.read_manifest(baseline)
        if before is None:
            raise tree.OutputFolderError(
                f"--baseline {baseline}: has no {tree.MANIFEST}; give a folder written by 'qoectl plan --out'"
            )
        return current, before
    except tree.OutputFolderError as exc:
        err.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        raise SystemExit(EXIT_ERROR) from None
    except OSError as exc:  # e.g. the working folder was removed under the shell
        err.print(f"error: --out {out_dir}: {exc.strerror or exc}", style="red", markup=False, soft_wrap=True)
        raise SystemExit(EXIT_ERROR) from None


def _plan_fleet(
    path: Path,
    out_dir: Path,
    before: Path,
    before_manifest: tree.Manifest | None,
    jobs: int,
    as_json: bool,
    with_diff: bool,
    session: incremental.Session,
) -> tuple[FleetRun[Written], Path, DiffSpool | None]:
    """Compile and render every device into a staging folder beside ``out_dir``, comparing each with ``before``.

    Each device is written and compared where it is rendered (in a worker
    process when ``jobs`` > 1), so only hashes, line counts and (``with_diff``) diffs come back. Only the
    files ``before_manifest`` lists are read. Returns the run and the staging
    folder to swap in; on errors the staging folder and any folder created for
    it are removed (nothing is written, as before) and this exits 1. Devices that ``session`` (the plan
    cache) can reuse are not compiled: they are in the run, unchanged, as the output has them.
    """
    try:
        with bulk_allocation():
            policy, problems = load_policy(path, jobs, session.parse.load_files, digests=session.keep is not False)
            validated = validate_policy(policy, problems)
            todo = session.select(validated.context, validated.devices, validated.diagnostics)
    except PolicyError as exc:
        report_failure(exc.diagnostics, as_json)
        raise SystemExit(EXIT_ERROR) from None
    created = _missing_parents(out_dir)
    staging = tree.begin(out_dir)
    spool = DiffSpool(_spool_folder(out_dir)) if with_diff else None  # diff text on disk, read back when shown

    replacing = before.resolve() == out_dir.resolve()  # unchanged files are linked from the tree being replaced

    def write_and_compare(plan: DevicePlan, files: dict[str, str]) -> Written:
        old = tree.read_owned_device(before, plan.device, before_manifest)
        hashes = write_device(staging, plan.device, files, (before / plan.device, old) if replacing and old else None)
        stats = incremental.file_stats(staging / plan.device, hashes) if session.writes else None
        return compare_device(plan.device, plan.platform, old, files, with_diff, spool), hashes, stats

    try:
        with _progress(len(todo), "rendering") as advance, bulk_allocation():
            run = render_fleet(dataclasses.replace(validated, devices=todo), write_and_compare, jobs, advance)
    except BaseException:
        tree.discard(staging)
        _remove_spool(spool)
        _remove_empty(created)
        raise
    if not run.ok:
        tree.discard(staging)
        _remove_spool(spool)
        _remove_empty(created)
        report_failure(list(run.diagnostics), as_json)
        raise SystemExit(EXIT_ERROR)
    if session.reused:
        with bulk_allocation():
            reused = session.reused_devices()
            kept: list[DeviceOutput[Written]] = [
                DeviceOutput(d, p, notes, (change, files, None)) for d, p, notes, change, files in reused
            ]
            run = dataclasses.replace(run, outputs=tuple(sorted((*run.outputs, *kept), key=lambda o: o.device)))
    return run, staging, spool


def _spool_folder(out_dir: Path) -> Path:
    """A folder beside ``out_dir`` for the diff text, removed when the command ends (or by the next plan, if killed)."""
    folder = tree.begin(out_dir)
    click.get_current_context().call_on_close(lambda: tree.discard(folder))
    return folder


def _remove_spool(spool: DiffSpool | None) -> None:
    if spool is not None:
        tree.discard(spool.folder)


@click.command()
@policy_arg
@click.option("--out", "out_dir", default="out", type=click.Path(path_type=Path), show_default=True)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    help="Compare with this folder (written by 'qoectl plan --out') instead of the previous contents of --out.",
)
@click.option("--diff/--no-diff", default=True, show_default=True, help="Show unified diffs of changed files.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Processes that compile and render devices (default: the number of CPUs; 1: this process only).",
)
@click.option(
    "--all-devices",
    is_flag=True,
    help="List every device, and every device a note concerns "
    "(above 50 devices: a table per platform and the first 50 devices that change).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown"]),
    default="table",
    show_default=True,
    help="markdown: the change summary for a merge-request comment or job summary, on stdout.",
)
@click.option(
    "--summary",
    "summary_file",
    type=FILE,
    help="Also write the Markdown change summary here (e.g. $GITHUB_STEP_SUMMARY), whatever --format says.",
)
@click.option(
    "--base-policy",
    type=click.Path(path_type=Path, exists=True),
    help="The policy as it is on the target branch: the summary lists the journeys whose budgets differ.",
)
@click.option(
    "--cache/--no-cache",
    default=None,
    help="Keep a plan cache in --out and recompile only the devices whose inputs changed since "
    f"(default: for fleets of {incremental.AUTO_DEVICES} devices or more); --no-cache: a full plan, no cache kept.",
)
@json_opt
def plan(
    path: Path,
    out_dir: Path,
    baseline: Path | None,
    diff: bool,
    as_json: bool,
    jobs: int | None,
    all_devices: bool,
    fmt: str,
    summary_file: Path | None,
    base_policy: Path | None,
    cache: bool | None,
) -> None:
    """Compile and render every device into --out and show what changed.

    Exit 0: nothing changed; 2: changes; 1: errors (like terraform plan -detailed-exitcode).
    """
    # The collector off for the whole command, not only around the load and the render: merging,
    # comparing and reporting 10,000 devices' outputs makes no cyclic garbage either (about 0.2 s of
    # collections in an incremental plan). In the console script's process, which ends with the command,
    # it stays off: turning it back on costs a scan of every object still alive (see main).
    if common.CONSOLE_PROCESS:
        gc.disable()
    click.get_current_context().with_resource(bulk_allocation())
    base_budgets = _base_budgets(base_policy) if base_policy is not None else None
    current, before_manifest = _claim_outputs(path, out_dir, baseline)
    before = baseline or out_dir
    with_diff = diff and (as_json or fmt == "table")  # the diff text only where it is printed or in the JSON
    replacing = before.resolve() == out_dir.resolve()
    session = incremental.Session(out_dir, current, cache, replacing)
    result, staging, spool = _plan_fleet(
        path, out_dir, before, before_manifest, jobs or default_jobs(), as_json, with_diff, session
    )
    try:
        rendered = {o.device: o for o in result.outputs}
        old_devices = before_manifest.devices if before_manifest is not None else {}
        gone = [
            compare_device(d, e.platform, tree.read_owned_device(before, d, before_manifest), None, with_diff, spool)
            for d, e in sorted(old_devices.items())
            if d not in rendered
        ]
        changes = sorted([o.value[0] for o in result.outputs] + gone, key=lambda c: c.device)
        manifest = tree.Manifest(
            {o.device: tree.DeviceEntry(o.platform, o.value[1]) for o in result.outputs},
            cache=session.keeps(len(result.diagnostics)),
        )
        now = {
            o.device: (o.notes, o.value[0].status != "unchanged", o.value[2])
            for o in result.outputs
            if o.device not in session.reused
        }
        with bulk_allocation():
            session.finish(staging, manifest, current, now)
    except tree.OutputFolderError as exc:
        err.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        raise SystemExit(EXIT_ERROR) from None
    finally:
        tree.discard(staging)
    changed = [c for c in changes if c.status != "unchanged"]
    code = EXIT_CHANGES if changed else EXIT_OK
    notes = {o.device: o.notes for o in result.outputs if o.notes}
    if summary_file is not None or fmt == "markdown":
        text = markdown_plan(changes, notes, out_dir, result.budgets, base_budgets)
        if summary_file is not None:
            with summary_file.open("a", encoding="utf-8") as summary:  # $GITHUB_STEP_SUMMARY is appended to
                summary.write(text)
        if fmt == "markdown" and not as_json:
            click.echo(text, nl=False)
            raise SystemExit(code)
    if as_json:
        head = {
            "ok": True,
            "out": str(out_dir),
            "changed": len(changed),
            "exit_code": code,
            "notes": {o.device: list(o.notes) for o in result.outputs if o.notes},
        }
        devices = (
            {
                "device": c.device,
                "platform": c.platform,
                "status": c.status,
                "added": c.added,
                "removed": c.removed,
                "files": {f.name: {"status": f.status, "diff": f.diff_text()} for f in c.files},
            }
            for c in changes
        )
        for piece in json_streamed(head, "devices", devices):  # the diffs read back one device at a time
            click.echo(piece, nl=False)
        click.echo()
        raise SystemExit(code)
    if diff:
        for c in changed:
            for f in c.files:
                if f.diff or f.spooled:
                    for line in f.diff_text().splitlines():
                        style = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1], "")
                        out.print(line, style=style, markup=False)
    print_plan(out, changes, notes, out_dir, all_devices)
    raise SystemExit(code)


def _base_budgets(base: Path) -> dict[str, Budget]:
    """The journeys' budgets of the policy at ``base`` (the target branch); one line and exit 1 when it is broken."""
    try:
        policy, problems = load_policy(base, default_jobs())
        validated = validate_policy(policy, problems)
    except PolicyError as exc:
        problems = exc.diagnostics
    else:
        problems = [d for d in validated.diagnostics if d.severity == "error"]
        if not problems:
            return validated.budgets
    err.print(
        f"error: --base-policy {base}: does not validate ({problems[0].format()}); the plan needs a valid base",
        style="red",
        markup=False,
        soft_wrap=True,
    )
    raise SystemExit(EXIT_ERROR)
