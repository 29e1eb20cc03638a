"""``qoectl loop``: the closed loop on the running lab and/or the configured sources (docs/loop.md).

Exit 0: the cycles ran; 1: the loop could not run (nothing to measure, no lab, the policy does not reach it, a
policy error, bad measurement data, a Prometheus that does not answer): one line on stderr.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from controller.cli.cmd_verify import source_opts
from controller.cli.console import make_console
from controller.cli.options import FILE, FOLDER, source_options
from controller.cli.policy_path import policy_path

out = make_console()
err = make_console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"error: {message}", style="red", markup=False)
    raise SystemExit(1)


def _subject(action: dict[str, object]) -> str:
    """What an action changes: the device, the journey, or (a path move) the journey on the device."""
    journey, device = action.get("journey"), action.get("device")
    if action.get("kind") in ("move_path", "path_back"):
        return f"{journey}@{device}"
    return str(device or journey or "")


def _line(n: int, data: dict[str, object], duration: float) -> str:
    verdicts = data.get("verdicts") or {}
    assert isinstance(verdicts, dict)
    failing = [k for k, v in verdicts.items() if v != "pass"]
    shown = "all pass" if not failing else "; ".join(f"{k} {verdicts[k]}" for k in failing)
    actions = data.get("actions") or []
    assert isinstance(actions, list)
    acts = ", ".join(f"{a['kind']} {_subject(a)} {a['before']}->{a['after']}" for a in actions)
    return f"cycle {n}: {shown} | actions: {acts or 'none'} | applied: {data.get('applied')} | {duration:.1f} s"


def register(cli: click.Group) -> None:
    cli.add_command(loop)


@click.command()
@policy_path()
@click.option("--cycles", type=click.IntRange(1, 100000), default=1, show_default=True, help="Cycles to run.")
@click.option("--interval-s", type=click.FloatRange(0), default=30.0, show_default=True, help="Pause between cycles.")
@click.option(
    "--measure-s", type=click.FloatRange(0.5, 600), default=3.0, show_default=True, help="Measurement window."
)
@click.option("--propose", "propose_dir", type=FOLDER, help="Write patches, never apply.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per cycle.")
@click.option("--state", "state_dir", type=FOLDER, help="Loop state folder (default: qoectl-runs/.qoectl-loop).")
@click.option(
    "--run-dir", type=FOLDER, default=Path("qoectl-runs"), show_default=True, help="Run folders (audit logs)."
)
@click.option("--known-hosts", type=FILE, help="Default: the lab's known_hosts.")
@click.option("--lab-dir", type=FOLDER, help="Lab state root (default: $QOECTL_LAB_DIR or /run/qoectl/lab).")
@click.option("--lock-dir", type=FOLDER, help="Device locks (as qoectl apply).")
@source_options()
@click.option("--lab", "with_lab", is_flag=True, help="Measure the running lab too (with --measurements/--prometheus).")
@click.option("--html", "html_file", type=FILE, help="Write the HTML report here.")
@click.option(
    "--act-after", type=click.IntRange(1), default=3, show_default=True, help="N: violating cycles before acting."
)
@click.option(
    "--relax-after", type=click.IntRange(1), default=5, show_default=True, help="M: good cycles before relaxing."
)
@click.option(
    "--min-interval-s",
    type=click.FloatRange(0),
    default=120.0,
    show_default=True,
    help="Between changes to one device.",
)
@click.option(
    "--max-step-pct", type=click.FloatRange(1, 100), default=25.0, show_default=True, help="Largest step of a change."
)
@click.option(
    "--headroom",
    type=click.FloatRange(0.5, 1),
    default=0.95,
    show_default=True,
    help="Shape to this share of the measured capacity.",
)
@click.option(
    "--path-hold",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="Cycles a journey's home transport must meet its SLA class before it moves back (and the fewest "
    "cycles between two path changes of a journey).",
)
def loop(
    path: Path,
    cycles: int,
    interval_s: float,
    measure_s: float,
    propose_dir: Path | None,
    as_json: bool,
    state_dir: Path | None,
    run_dir: Path,
    known_hosts: Path | None,
    lab_dir: Path | None,
    lock_dir: Path | None,
    measurement_files: tuple[Path, ...],
    prometheus_url: str | None,
    feedback_files: tuple[Path, ...],
    since: str | None,
    until: str | None,
    step: str,
    with_lab: bool,
    html_file: Path | None,
    act_after: int,
    relax_after: int,
    min_interval_s: float,
    max_step_pct: float,
    headroom: float,
    path_hold: int,
) -> None:
    """Measure, evaluate, decide, compile, apply, record: --cycles times.

    Measures the running lab (root), or the sources given as for `qoectl verify` (--measurements FILE,
    --prometheus URL, --feedback FILE): no root, and with --propose DIR no device either (a CI job). With
    sources, --lab measures the lab as well. PATH is the policy repository (for the lab, its inventory must
    reach the lab: `qoectl lab policy --out DIR`).
    """
    from controller.adjust import DecisionError, Limits, StateError
    from controller.lab.measure import MeasureError
    from controller.lab.state import USER_ENV, LabState, current, state_root
    from controller.loop import CycleResult, LoopConfig, LoopError, cycle
    from controller.loop_report import render
    from controller.measure.sources import check_prometheus

    try:
        sources = source_opts(measurement_files, prometheus_url, feedback_files, since, until, step)
    except click.BadParameter as exc:
        _fail(exc.format_message())
    lab: LabState | None = None
    if with_lab or not sources.measures:
        if not sources.measures:
            lead, give = "nothing to measure: ", "; or give --measurements FILE or --prometheus URL (as qoectl verify)"
        else:
            lead, give = "--lab: ", ""
        if os.geteuid() != 0:
            _fail(f"{lead}qoectl loop measures the lab as root only (qoectl lab needs root){give}")
        lab = current(state_root(lab_dir))
        if lab is None:
            _fail(f"{lead}no lab is up: start one with `qoectl lab up examples/lab/lab.yaml`{give}")
    if sources.prometheus_url:
        problem = check_prometheus(sources.prometheus_url, time.time())
        if problem:
            _fail(f"--prometheus: {problem}")
    limits = Limits(
        act_after=act_after,
        relax_after=relax_after,
        min_interval_s=min_interval_s,
        max_step_pct=max_step_pct,
        headroom=headroom,
        path_hold=path_hold,
    )
    environ = dict(os.environ)
    if lab is not None:
        environ.setdefault(USER_ENV, "root")
        hosts = known_hosts or Path(lab.files.known_hosts)
    else:
        hosts = known_hosts or Path(os.path.expanduser("~/.ssh/known_hosts"))
    cfg = LoopConfig(
        policy=path,
        lab=lab,
        known_hosts=hosts,
        run_root=run_dir,
        state_path=(state_dir or run_dir / ".qoectl-loop") / "state.json",
        lock_dir=lock_dir,
        propose_dir=propose_dir,
        limits=limits,
        duration_s=measure_s,
        sources=sources,
        environ=environ,
    )
    measured = "; ".join(cfg.measured_by())
    if propose_dir is not None:
        doing = f"proposing: patches to {propose_dir}, nothing is applied"
    else:
        doing = (
            "applying: changes go to the inventory's devices through the apply engine (as `qoectl apply`: "
            "locks, backups, verification, rollback; credentials from the environment)"
        )
    err.print(f"measuring: {measured} | {doing}", markup=False, soft_wrap=True)
    results: list[CycleResult] = []
    try:
        for n in range(1, cycles + 1):
            r = cycle(cfg, n)
            results.append(r)
            data = r.to_json()
            if as_json:
                click.echo(json.dumps(data, sort_keys=True))
            else:
                out.print(_line(n, data, r.duration_s), markup=False)
                for problem in r.apply_errors:
                    err.print(f"apply: {problem}", style="red", markup=False, soft_wrap=True)
            if n < cycles and interval_s:
                time.sleep(interval_s)
    except (LoopError, DecisionError, StateError, MeasureError) as exc:
        _fail(str(exc))
    finally:
        if html_file is not None and results:
            html_file.parent.mkdir(parents=True, exist_ok=True)
            html_file.write_text(render(results, results[-1].decision.build.policy), encoding="utf-8")
            if not as_json:
                out.print(f"report: {html_file}", markup=False)
