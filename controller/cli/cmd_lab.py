"""``qoectl lab``: a real data plane on this machine (network namespaces, Linux routers with sshd, an ISP bottleneck).

Exit codes: 0 done; 1 the command could not do it (not root, a lab already up, a bad lab file, a
failed step: one line says why and what to do).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from controller.cli import common
from controller.cli.console import make_console

EXIT_ERROR = 1
DEFAULT_LAB = Path("examples/lab/lab.yaml")

out = make_console()
err = make_console(stderr=True)


def _root(ctx: click.Context) -> Path:
    from controller.lab.state import state_root

    explicit: Path | None = ctx.obj.get("state_dir") if ctx.obj else None
    return state_root(explicit)


def _progress(message: str) -> None:
    err.print(f"lab: {message}", markup=False, style="dim")


def _fail(message: str, as_json: bool = False) -> None:
    if as_json:
        click.echo(json.dumps({"ok": False, "error": message}, indent=2, sort_keys=True))
    else:
        err.print(f"error: {message}", style="red", markup=False)
    raise SystemExit(EXIT_ERROR)


@contextmanager
def _guard(as_json: bool) -> Iterator[None]:
    """Turn every lab error into one line (a bad lab file: one line per problem) and exit 1."""
    from controller.errors import PolicyError
    from controller.lab.config import LabFileError
    from controller.lab.control import LabError
    from controller.lab.measure import MeasureError
    from controller.lab.netns import LabCommandError
    from controller.lab.state import StateError

    try:
        yield
    except LabFileError as exc:
        if as_json:
            _emit({"ok": False, "diagnostics": [d.to_json() for d in exc.diagnostics]})
        else:
            for d in exc.diagnostics:
                err.print(d.format(), style="red", markup=False)
            err.print(f"{len(exc.diagnostics)} error(s) in the lab file", style="bold red")
        raise SystemExit(EXIT_ERROR) from None
    except PolicyError as exc:
        _fail("; ".join(d.format() for d in exc.diagnostics[:3]), as_json)
    except (LabError, LabCommandError, StateError, MeasureError) as exc:
        _fail(str(exc), as_json)


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _summary(data: dict[str, Any]) -> None:
    running = sum(1 for p in data["processes"] if p["running"])
    state = "is up" if data["complete"] else "is NOT complete (`qoectl lab down` removes it)"
    out.print(
        f"lab [bold]{data['name']}[/bold] {state}: {len(data['namespaces'])} namespaces, "
        f"{running}/{len(data['processes'])} processes running (state {data['state_dir']})"
    )
    for name, h in data["hosts"].items():
        out.print(
            f"  host    {name:<14} {', '.join(h['addresses']):<22} site {h['site']:<10} {h['namespace']}", markup=False
        )
    for name, r in data["routers"].items():
        mgmt = r["management"]
        out.print(f"  router  {name:<14} ssh {mgmt['host']}:{mgmt['port']:<12} {r['namespace']}", markup=False)
    for name, w in data["wans"].items():
        cross = data.get("degraded", {}).get(name)
        extra = f", cross traffic {cross} kbit/s" if cross else ""
        out.print(
            f"  wan     {name:<14} {w['capacity_kbps']} kbit/s, FIFO {w['buffer_ms']} ms{extra}   {w['namespace']}",
            markup=False,
        )
    out.print(f"  load    bulk {data['load']['bulk']:g} x capacity", markup=False)
    out.print(f"apply its policy: {data['apply']['command']}", markup=False)


def register(cli: click.Group) -> None:
    cli.add_command(lab)


@click.group()
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where labs keep their state (default: $QOECTL_LAB_DIR or /run/qoectl/lab).",
)
@click.pass_context
def lab(ctx: click.Context, state_dir: Path | None) -> None:
    """A lab of network namespaces: hosts, Linux routers with sshd, an ISP bottleneck, traffic (root only).

    qoectl apply reaches the lab's routers like real ones (netmiko, verified host keys); the
    measurement API and `qoectl lab measure` run the built-in probes across its loaded WAN.
    """
    ctx.ensure_object(dict)
    ctx.obj["state_dir"] = state_dir


@lab.command()
@click.argument("lab_file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the lab's status as JSON when it is up.")
@click.pass_context
def up(ctx: click.Context, lab_file: Path | None, as_json: bool) -> None:
    """Build the lab of LAB_FILE (default: examples/lab/lab.yaml) and start its traffic."""
    from controller.lab import control

    with _guard(as_json):
        state = control.up(lab_file or DEFAULT_LAB, _root(ctx), progress=_progress)
        data = control.status_json(state)
    if as_json:
        _emit({"up": True, **data})  # what `qoectl lab status --json` prints
    else:
        _summary(data)


@lab.command()
@click.option("--name", help="A lab whose state is gone: remove the namespaces named after it (qlab-NAME-*).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
@click.pass_context
def down(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Stop every process of the lab (by PID) and remove its namespaces, links and state."""
    from controller.lab import control

    with _guard(as_json):
        report = control.down(_root(ctx), name, progress=_progress)
    if report is None:
        if as_json:
            _emit({"ok": True, "removed": None})
        else:
            out.print("no lab is up", markup=False)
        return
    if as_json:
        _emit(
            {
                "ok": not report.left,
                "removed": report.name,
                "stopped_pids": list(report.stopped),
                "namespaces": list(report.namespaces),
                "left": list(report.left),
            }
        )
    else:
        out.print(
            f"lab {report.name} removed: {len(report.stopped)} processes stopped, "
            f"{len(report.namespaces)} namespaces deleted",
            markup=False,
        )
    if report.left:
        if not as_json:
            err.print(f"error: could not remove: {', '.join(report.left)}", style="red", markup=False)
        raise SystemExit(EXIT_ERROR)


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Namespaces, hosts, routers, links, processes as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the running lab: namespaces and addresses of every host and router, links, processes."""
    from controller.lab import control

    with _guard(as_json):
        control.preflight()
        state = control.status(_root(ctx))
        data = control.status_json(state) if state is not None else None
    if data is None:
        if as_json:
            _emit({"up": False})
        else:
            out.print("no lab is up", markup=False)
        return
    if as_json:
        _emit({"up": True, **data})
    else:
        _summary(data)


@lab.command()
@click.option(
    "--bulk",
    type=click.FloatRange(0, 20),
    required=True,
    help="bulk_udp rate as a multiple of its WAN's capacity (2.0: twice the capacity; 0: stopped).",
)
@click.pass_context
def load(ctx: click.Context, bulk: float) -> None:
    """Change the bulk overload of the running lab (its bulk_udp generators are restarted at the new rate)."""
    from controller.lab import control

    with _guard(False):
        control.set_load(_root(ctx), bulk, progress=_progress)
    out.print(f"bulk load {bulk:g} x capacity", markup=False)


@lab.command()
@click.argument("wan")
@click.argument("kbps", type=click.IntRange(64, 10_000_000))
@click.pass_context
def capacity(ctx: click.Context, wan: str, kbps: int) -> None:
    """Change the real capacity of WAN to KBPS kbit/s while the lab runs (the ISP's bottleneck, both ways)."""
    from controller.lab import control

    with _guard(False):
        control.set_capacity(_root(ctx), wan, kbps, progress=_progress)
    out.print(f"{wan}: {kbps} kbit/s", markup=False)


@lab.command()
@click.argument("transport")
@click.option(
    "--cross-traffic-kbps",
    "kbps",
    type=click.IntRange(0, 10_000_000),
    help="UDP cross traffic through the ISP of TRANSPORT, in kbit/s (0: stop it).",
)
@click.option("--off", is_flag=True, help="Stop the cross traffic on TRANSPORT.")
@click.option("--towards", help="The router the cross traffic queues towards (default: the WAN's last router).")
@click.pass_context
def degrade(ctx: click.Context, transport: str, kbps: int | None, off: bool, towards: str | None) -> None:
    """Congest TRANSPORT from outside the routers: cross traffic in its ISP, queueing in the ISP's own FIFO.

    TRANSPORT is a WAN's name or the transport it carries. The delay and loss it causes are real queueing
    that no router can shape away; `--off` (or `--cross-traffic-kbps 0`) stops it, `lab down` too.
    """
    from controller.lab import control

    if off == (kbps is not None):
        _fail("give --cross-traffic-kbps N or --off")
    rate = 0 if off or kbps is None else kbps
    with _guard(False):
        control.degrade(_root(ctx), transport, rate, towards, progress=_progress)
    out.print(f"{transport}: cross traffic {rate} kbit/s" if rate else f"{transport}: no cross traffic", markup=False)


@lab.command()
@click.option("--policies", "policy", type=click.Path(path_type=Path), help="Policy folder (default: the lab's).")
@click.option("--duration", "duration_s", type=click.FloatRange(0.5, 600), default=5.0, show_default=True)
@click.option("--journey", "journeys", multiple=True, help="Only this journey's probe. Repeat for more.")
@click.option("--out", "out_file", type=click.Path(path_type=Path, dir_okay=False), help="Write the samples here.")
@click.option("--json", "as_json", is_flag=True, help="Probes, queues and samples as JSON.")
@click.pass_context
def measure(
    ctx: click.Context,
    policy: Path | None,
    duration_s: float,
    journeys: tuple[str, ...],
    out_file: Path | None,
    as_json: bool,
) -> None:
    """One measurement cycle: every probe of the lab across the loaded WAN, and the queues on the way.

    --out writes the samples for `qoectl verify --measurements`.
    """
    from controller.lab import control
    from controller.lab.measure import measure as run_cycle

    with _guard(as_json):
        control.preflight()
        state = control.status(_root(ctx))
        if state is None:
            raise control.LabError("no lab is up: start one with `qoectl lab up LABFILE`")
        built = common.build_or_exit(policy or Path(state.config.policy), as_json)
        cycle = run_cycle(state, built, duration_s, journeys=journeys)
    if out_file is not None:
        cycle.write_samples(out_file)
    sla = cycle.sla(built)
    if as_json:
        _emit({**cycle.to_json(), "sla": [v.to_json() for v in sla]})
        return
    for p in cycle.probes:
        if p.error:
            line = f"error: {p.error}"
        elif p.kind in ("voice", "video"):
            line = (
                f"loss {p.loss_pct:.2f} %, one-way p50 {p.delay_p50_ms:.2f} ms, p99 {p.delay_p99_ms:.2f} ms, "
                f"jitter {p.jitter_ms:.2f} ms, DSCP {','.join(f'{d}x{n}' for d, n in p.dscp_seen) or '-'}"
            )
            if p.throughput_kbps is not None:
                line += f", {p.throughput_kbps:.0f} kbit/s"
        elif p.kind == "http":
            p50 = f"{p.response_p50_ms:.1f} ms" if p.response_p50_ms is not None else "-"
            line = f"{p.transactions} transactions, {p.errors} failed, response p50 {p50}"
        else:
            line = f"{p.throughput_kbps:.0f} kbit/s"
        out.print(f"{p.journey:<20} {p.kind:<10} {p.site:<8} {line}", markup=False)
    for i in (*cycle.routers, *cycle.bottlenecks):
        rate = f"{i.rate_kbps:.0f} kbit/s" if i.rate_kbps else "no shaper"
        out.print(
            f"{i.role:<10} {i.node:<12} {i.interface:<6} -> {i.towards:<12} {rate:<14} backlog {i.backlog_bytes} B "
            f"(max {i.max_backlog_bytes} B = {i.max_queue_delay_ms:.0f} ms), {i.drops} dropped",
            markup=False,
        )
    for t in cycle.transports:
        r = t.result
        health = (
            f"error: {r.error}"
            if r.error
            else f"mean {_num(r.delay_mean_ms)} ms, jitter {_num(r.jitter_ms)} ms, loss {_num(r.loss_pct)} %"
        )
        verdicts = " ".join(
            f"{v.sla_class}:{v.verdict}" for v in sla if v.device == t.source and v.transport == t.transport
        )
        out.print(
            f"transport  {t.transport:<12} {t.source} -> {t.destination} ({t.destination_address}): {health}"
            + (f" | SLA {verdicts}" if verdicts else ""),
            markup=False,
        )
    took = cycle.ended - cycle.started
    where = f"; samples in {out_file}" if out_file else ""
    out.print(f"{len(cycle.samples)} samples in {took:.1f} s{where}", markup=False)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


@lab.command("policy")
@click.option("--from", "source", type=click.Path(path_type=Path, file_okay=False), help="Default: the lab's policy.")
@click.option("--out", "dest", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.pass_context
def policy_cmd(ctx: click.Context, source: Path | None, dest: Path) -> None:
    """Copy the lab's policy to --out, its inventory aimed at the running lab (addresses, key file)."""
    from controller.lab import control
    from controller.lab.policy import retarget

    with _guard(False):
        control.preflight()
        state = control.status(_root(ctx))
        if state is None:
            raise control.LabError("no lab is up: start one with `qoectl lab up LABFILE`")
        if dest.exists():
            raise control.LabError(f"{dest} exists: give a new folder")
        retarget(source or Path(state.config.policy), state, dest)
    from controller.lab.state import USER_ENV

    out.print(f"wrote {dest}; apply it: {USER_ENV}=root qoectl apply {dest} --known-hosts {state.files.known_hosts}")
