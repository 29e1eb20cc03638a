"""The commands that read a policy and show it: ``validate``, ``render``, ``explain`` and ``schema``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape

from controller.cli.common import (
    EXIT_ERROR,
    build_or_exit,
    emit_json,
    err,
    json_opt,
    out,
    policy_arg,
    print_diagnostics,
)
from controller.cli.options import FILE
from controller.cli.policy_path import policy_path


def register(cli: click.Group) -> None:
    for command in (validate, render, explain, schema):
        cli.add_command(command)


@click.command()
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
    from controller.cli.validate_report import write_junit

    result = build_or_exit(path, as_json, junit_file)
    warnings = [d for d in result.diagnostics if d.severity == "warning"]
    if junit_file is not None:
        write_junit(junit_file, path, warnings)
    if as_json:
        emit_json(
            {
                "ok": True,
                "journeys": len(result.policy.journeys),
                "devices": len(result.plans),
                "diagnostics": [d.to_json() for d in warnings],
            }
        )
        return
    print_diagnostics(warnings)
    out.print(
        f"[green]ok[/green]: {len(result.policy.journeys)} journeys, {len(result.policy.devices)} devices, "
        f"{len(result.policy.sites)} sites"
    )


@click.command()
@policy_arg
@click.option("--device", required=True, help="Device name from the inventory.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Write files here instead of printing.")
def render(path: Path, device: str, out_dir: Path | None) -> None:
    """Render one device's configs."""
    from controller.pipeline import render_plan
    from controller.render import tree
    from controller.render.outputs import update_tree

    result = build_or_exit(path, False)
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


@click.command()
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

    result = build_or_exit(path, as_json)
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
        emit_json(data)
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


@click.command()
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
