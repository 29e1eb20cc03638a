"""The ``qoectl`` command line.

Exit codes follow ``terraform plan -detailed-exitcode``: 0 nothing to change,
2 changes, 1 errors. A user's mistake never prints a traceback: it prints
``file:line:col: field: message; hint: ...`` lines.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from controller import __version__
from controller.cli.console import make_console
from controller.cli.options import FILE
from controller.cli.plan_report import json_streamed, markdown_plan, print_plan
from controller.cli.policy_path import policy_path
from controller.cli.validate_report import write_junit
from controller.compile.budgets import Budget
from controller.errors import Diagnostic, PolicyError
from controller.load.loader import load_policy
from controller.parallel import default_jobs
from controller.pipeline import (
    Build,
    DeviceOutput,
    FleetRun,
    build,
    bulk_allocation,
    render_fleet,
    render_plan,
    validate_policy,
)
from controller.plan import DevicePlan
from controller.render import incremental, tree
from controller.render.outputs import DeviceChange, DiffSpool, compare_device, update_tree, write_device

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


out = make_console()
err = make_console(stderr=True)

policy_arg = policy_path()  # every command that reads policies: PATH, default "policies"
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")


def _print_diagnostics(diags: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
    for d in diags:
        style = "yellow" if d.severity == "warning" else "red"
        err.print(d.format(), style=style, markup=False)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


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


def _build(path: Path, as_json: bool, junit: Path | None = None) -> Build:
    """Load+validate+compile, or report every problem and exit 1 (also as JUnit XML into ``junit``)."""
    try:
        result = build(path, jobs=default_jobs())
    except PolicyError as exc:
        _report_failure(exc.diagnostics, as_json, path, junit)
        raise SystemExit(EXIT_ERROR) from None
    if not result.ok:
        _report_failure(list(result.diagnostics), as_json, path, junit)
        raise SystemExit(EXIT_ERROR)
    return result


def _report_failure(
    diags: list[Diagnostic], as_json: bool, path: Path | None = None, junit: Path | None = None
) -> None:
    if junit is not None and path is not None:
        write_junit(junit, path, diags)
    if as_json:
        _emit_json({"ok": False, "diagnostics": [d.to_json() for d in diags]})
    else:
        _print_diagnostics(diags)
        n = sum(1 for d in diags if d.severity == "error")
        files = len({d.location.file for d in diags})
        err.print(f"{n} error(s) in {files} file(s)", style="bold red")


# The commands each ``controller/cli/cmd_*.py`` module adds with ``register(cli)``. A module is imported
# only when one of its commands runs (or for --help), so ``qoectl verify`` does not load the apply
# drivers (netmiko, paramiko) or the lab; tests/test_cli_lazy.py checks this map against the modules.
COMMAND_MODULES = {
    "apply": "cmd_apply",
    "baseline": "cmd_baseline",
    "export": "cmd_export",
    "init": "cmd_init",
    "schema-check": "cmd_init",
    "lab": "cmd_lab",
    "loop": "cmd_loop",
    "qoe": "cmd_qoe",
    "verify": "cmd_verify",
    "probe": "cmd_verify",
}


class LazyGroup(click.Group):
    """A group whose commands from :data:`COMMAND_MODULES` are registered on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loaded: set[str] = set()

    def load(self, module: str) -> None:
        if module not in self.loaded:
            self.loaded.add(module)
            import importlib

            importlib.import_module(f"controller.cli.{module}").register(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMAND_MODULES:
            self.load(COMMAND_MODULES[cmd_name])
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in sorted(set(COMMAND_MODULES.values())):
            self.load(module)
        return super().list_commands(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qoectl")
def cli() -> None:
    """Policy-as-code QoS/QoE controller: journey targets in Git -> device QoS configs."""


@cli.command()
@policy_arg
@json_opt
@click.option(
    "--junit",
    "junit_file",
    type=FILE,
    help="Also write JUnit XML here: a test case per file and per problem (file, line), for CI.",
)
def validate(path: Path, as_json: bool, junit_file: Path | None) -> None:
    """Check the policy repository at PATH (schema and meaning); exit 1 on any error."""
    result = _build(path, as_json, junit_file)
    warnings = [d for d in result.diagnostics if d.severity == "warning"]
    if junit_file is not None:
        write_junit(junit_file, path, warnings)
    if as_json:
        _emit_json(
            {
                "ok": True,
                "journeys": len(result.policy.journeys),
                "devices": len(result.plans),
                "diagnostics": [d.to_json() for d in warnings],
            }
        )
        return
    _print_diagnostics(warnings)
    out.print(
        f"[green]ok[/green]: {len(result.policy.journeys)} journeys, {len(result.policy.devices)} devices, "
        f"{len(result.policy.sites)} sites"
    )


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
        _report_failure(exc.diagnostics, as_json)
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
        _report_failure(list(run.diagnostics), as_json)
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


@cli.command()
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
    if _CONSOLE_PROCESS:
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


@cli.command()
@policy_arg
@click.option("--device", required=True, help="Device name from the inventory.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Write files here instead of printing.")
def render(path: Path, device: str, out_dir: Path | None) -> None:
    """Render one device's configs."""
    result = _build(path, False)
    plan_ = result.plan(device)
    if plan_ is None:
        names = ", ".join(p.device for p in result.plans[:20])
        err.print(f"unknown device '{device}'; devices: {names}", style="red", markup=False)
        raise SystemExit(EXIT_ERROR)
    files = render_plan(plan_)
    if out_dir:
        try:
            written = update_tree(out_dir, {device: (plan_.platform, files)}, path)
        except tree.OutputFolderError as exc:
            err.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
            raise SystemExit(EXIT_ERROR) from None
        for target in written:
            err.print(f"wrote {target}", markup=False)
        return
    for name, text in files.items():
        click.echo(f"# ---- {device}/{name}")
        click.echo(text, nl=False)


@cli.command()
@click.argument("journey")
@policy_path(alias=True)
@click.option("--device", help="Only this device.")
@json_opt
def explain(journey: str, path: Path, device: str | None, as_json: bool) -> None:
    """Show how JOURNEY's targets became budgets, classes and config lines, per device.

    PATH is the policy repository (default: policies).
    """
    from controller.explain import explain as do_explain
    from controller.explain import read_back_text

    result = _build(path, as_json)
    if device is not None and result.plan(device) is None:
        known = ", ".join(p.device for p in result.plans)
        err.print(f"unknown device '{device}'; devices: {known}", style="red", markup=False)
        raise SystemExit(EXIT_ERROR)
    try:
        data = do_explain(result, journey, device)
    except KeyError:
        known = ", ".join(j.name for j in result.policy.journeys)
        err.print(f"unknown journey '{journey}'; journeys: {known}", style="red", markup=False)
        raise SystemExit(EXIT_ERROR) from None
    if as_json:
        _emit_json(data)
        return
    # Only what is set (never "owner None"); the owner is the user's text, not rich markup ("[/team]" is no tag).
    owner = f", owner {escape(data['owner'])}" if data["owner"] is not None else ""
    out.print(f"[bold]journey {data['journey']}[/bold] ({data['kind']}, priority {data['priority']}{owner})")
    target = {k: v for k, v in data["target"].items() if v is not None}
    out.print(f"target: {json.dumps(target)}", markup=False)
    out.print(f"service class: {data['service_class']}")
    budget = data["budget"] or {}
    out.print("[bold]budgets[/bold]")
    for step in budget.get("steps", []):
        out.print(f"  - {step}", markup=False)
    for key in ("one_way_delay_ms", "jitter_ms", "loss_pct", "min_throughput_kbps"):
        if budget.get(key) is not None:
            pinned = " (pinned)" if key in budget.get("pinned", []) else ""
            out.print(f"  {key}: {budget[key]}{pinned}")
    for d in data["devices"]:
        out.print(
            f"[bold]{d['device']}[/bold] ({d['platform']}, site {d['site']}): class {d['class']} "
            f"queue {d['queue']}{' strict priority' if d['strict_priority'] else ''}, DSCP {d['dscp']}"
        )
        for a in d["interfaces"]:
            police = f", policed at {a['police_kbps']} kbps" if a["police_kbps"] else ""
            out.print(
                f"  {a['interface']}: {a['guaranteed_kbps']} kbps guaranteed ({a['guaranteed_pct']} %), "
                f"up to {a['max_kbps']} kbps{police}",
                markup=False,
            )
        if d["sla_class"]:
            s = d["sla_class"]
            limits = [
                f"{label} {s[key]}{unit}"
                for key, label, unit in (
                    ("latency_ms", "latency", " ms"),
                    ("jitter_ms", "jitter", " ms"),
                    ("loss_pct", "loss", " %"),
                )
                if s[key] is not None
            ]
            out.print(f"  SLA class {s['name']}: {', '.join(limits)}", markup=False)
        if d["path"]:
            out.print(
                f"  path: prefer {', '.join(d['path']['preferred'])}; backup {', '.join(d['path']['backup']) or '-'}"
            )
        if d["read_back"]:
            out.print(f"  the rendered config, read back: {read_back_text(d['read_back'])}", markup=False)
        for name, lines in d["config_lines"].items():
            out.print(f"  [dim]{name}[/dim]")
            for line in lines:
                out.print(f"    {line}", markup=False)


@cli.command()
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Write to this file instead of stdout.")
def schema(out_file: Path | None) -> None:
    """Write the JSON Schema of the policy language (for yaml-language-server)."""
    from controller.spec.schema import schema_text

    text = schema_text()
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text, encoding="utf-8")
        err.print(f"wrote {out_file}", markup=False)
    else:
        click.echo(text, nl=False)


@cli.group()
def qoe() -> None:
    """Quality-of-experience models for quick answers."""


@qoe.command()
@click.option("--delay-ms", type=click.FloatRange(min=0), required=True, help="One-way delay.")
@click.option("--jitter-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--loss-pct", type=click.FloatRange(min=0, max=100), default=0.0, show_default=True)
@click.option("--codec", type=click.Choice(["g711", "g711-plc", "g729a"]), default="g711", show_default=True)
@json_opt
def voice(delay_ms: float, jitter_ms: float, loss_pct: float, codec: str, as_json: bool) -> None:
    """R factor and MOS from the ITU-T G.107 E-model (qoectl's documented variant)."""
    from controller.qoe.emodel import voice_quality

    q = voice_quality(delay_ms, jitter_ms, loss_pct, codec)
    if as_json:
        _emit_json(
            {
                "r": round(q.r, 4),
                "mos": round(q.mos, 4),
                "codec": codec,
                "effective_delay_ms": round(q.effective_delay_ms, 4),
                "id": round(q.id, 4),
                "ie_eff": round(q.ie_eff, 4),
            }
        )
        return
    out.print(f"R = {q.r:.2f}  MOS = {q.mos:.2f}  ({codec}, effective delay {q.effective_delay_ms:.1f} ms)")


_CONSOLE_PROCESS = False  # True in the console script's process: it ends when the command does


def main() -> None:  # pragma: no cover - console script
    from controller.registry import PlatformError

    global _CONSOLE_PROCESS
    _CONSOLE_PROCESS = True
    try:
        cli(standalone_mode=True)
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    except PlatformError as e:  # a platform package that does not keep the contract: its author's mistake
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    finally:
        if not gc.isenabled():  # a command left the collector off (plan): the objects it leaves are not
            gc.freeze()  # scanned once more by the interpreter's last collection at exit (~0.1 s at 10,000 devices)


if __name__ == "__main__":  # pragma: no cover
    main()
