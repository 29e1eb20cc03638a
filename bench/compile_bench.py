"""Compile benchmark: a generated 10,000-device fleet through the real pipeline, against its floor.

What it measures, in one run on this machine:

* **pipeline** - exactly what ``qoectl plan`` does before writing files:
  ``controller.pipeline.build`` (load + validate + compile; timed per stage by
  calling its two halves inside the same ``bulk_allocation()`` it uses) and
  ``render_plan`` for every device;
* **floor** - the same templates rendered from contexts computed beforehand
  (``renderer.context(plan)`` untimed, only ``renderer.render_context(ctx)``
  timed): what rendering costs with every other stage taken away;
* **peak memory** - the whole pipeline again in a fresh subprocess, which
  reports its own peak RSS (``resource.getrusage``), so the benchmark's own
  data (generator, floor contexts) is not counted.

Ratios, not absolute numbers, are what to compare across machines: the
goal is total/floor <= 2. Results go to ``bench/results/compile.json``.

    python bench/compile_bench.py                  # 10,000 devices, 50 journeys
    python bench/compile_bench.py --devices 2000   # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(HERE.parent))

from bench import fleet  # noqa: E402
from controller.load.loader import load_policy  # noqa: E402
from controller.pipeline import Build, bulk_allocation, compile_policy, render_plan  # noqa: E402
from controller.render import get_renderer  # noqa: E402

RESULTS = HERE / "results" / "compile.json"
GOAL_TOTAL_S = 10.0
GOAL_PEAK_MIB = 1024.0
GOAL_RATIO = 2.0

Advance = Callable[[int], None]


@dataclass
class Stage:
    """Wall and CPU seconds of one stage (CPU shows how much a busy machine inflated wall time)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0


@contextmanager
def timed(stage: Stage) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        stage.wall_s += time.perf_counter() - wall
        stage.cpu_s += time.process_time() - cpu


@dataclass
class PipelineRun:
    load: Stage = field(default_factory=Stage)
    compile: Stage = field(default_factory=Stage)
    render: Stage = field(default_factory=Stage)
    devices: int = 0
    files: int = 0
    output_bytes: int = 0
    digest: str = ""

    @property
    def total(self) -> Stage:
        return Stage(
            self.load.wall_s + self.compile.wall_s + self.render.wall_s,
            self.load.cpu_s + self.compile.cpu_s + self.render.cpu_s,
        )


def _nothing(_: int = 1) -> None:
    return None


def run_pipeline(
    root: Path, advance_compile: Advance = _nothing, advance_render: Advance = _nothing
) -> tuple[Build, PipelineRun]:
    """``build(root)`` split into its two timed halves, then ``render_plan`` for every device."""
    run = PipelineRun()
    with bulk_allocation():
        with timed(run.load):
            policy, problems = load_policy(root)
        with timed(run.compile):
            result = compile_policy(policy, problems, advance_compile)
    if not result.ok:
        shown = "\n".join(d.format() for d in result.errors[:20])
        raise RuntimeError(f"the generated fleet does not validate ({len(result.errors)} errors):\n{shown}")
    digest = hashlib.sha256()
    with timed(run.render):
        for plan in result.plans:
            files = render_plan(plan)
            for name in sorted(files):
                data = files[name].encode()
                digest.update(f"{plan.device}/{name}\0".encode())
                digest.update(data)
                run.output_bytes += len(data)
                run.files += 1
            advance_render(1)
    run.devices = len(result.plans)
    run.digest = digest.hexdigest()
    return result, run


@dataclass
class FloorRun:
    context: Stage = field(default_factory=Stage)
    render: Stage = field(default_factory=Stage)
    digest: str = ""


def run_floor(result: Build, advance: Advance = _nothing) -> FloorRun:
    """The same templates from precomputed contexts: only ``render_context`` is the floor."""
    run = FloorRun()
    with timed(run.context):
        contexts = []
        for plan in result.plans:
            renderer = get_renderer(plan.platform)
            assert renderer is not None
            contexts.append((plan.device, renderer, renderer.context(plan)))
    outputs = []
    with timed(run.render):
        for _, renderer, ctx in contexts:
            outputs.append(renderer.render_context(ctx))
            advance(1)
    digest = hashlib.sha256()
    for (device, _, _), files in zip(contexts, outputs, strict=True):
        for name in sorted(files):
            digest.update(f"{device}/{name}\0".encode())
            digest.update(files[name].encode())
    run.digest = digest.hexdigest()
    return run


def _vm_hwm_mib() -> float | None:
    """This process's own RSS high-water mark (Linux ``VmHWM``), or None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def child_main(root: Path) -> None:
    """The full pipeline in this fresh process; print its peak RSS and times as JSON.

    Linux carries the spawning process's RSS high-water mark into a child's
    ``ru_maxrss`` across fork+exec, so the parent spawns this child before it
    loads anything big, and ``VmHWM`` (this process's own memory only) is
    reported beside it as a cross-check.
    """
    _, run = run_pipeline(root)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    data = {
        "peak_rss_mib": peak_kib / 1024.0,
        "vm_hwm_mib": _vm_hwm_mib(),
        "total_wall_s": run.total.wall_s,
        "devices": run.devices,
    }
    print(json.dumps(data))


def measure_peak_rss(root: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def _r(x: float, digits: int = 3) -> float:
    return round(x, digits)


def report(info: fleet.FleetInfo, gen: Stage, run: PipelineRun, floor: FloorRun, mem: dict[str, Any]) -> dict[str, Any]:
    total = run.total
    ratio = total.wall_s / floor.render.wall_s if floor.render.wall_s else float("inf")
    ratio_cpu = total.cpu_s / floor.render.cpu_s if floor.render.cpu_s else float("inf")
    peak = float(mem["peak_rss_mib"])
    return {
        "fleet": {
            "devices": info.devices,
            "journeys": info.journeys,
            "sites": info.sites,
            "interfaces": info.interfaces,
            "policy_files": info.files,
            "platforms": sorted(set(info.platforms)),
        },
        "stages_wall_s": {
            "generate": _r(gen.wall_s),
            "load": _r(run.load.wall_s),
            "validate_compile": _r(run.compile.wall_s),
            "render": _r(run.render.wall_s),
            "total": _r(total.wall_s),
            "floor_render": _r(floor.render.wall_s),
            "floor_context_untimed": _r(floor.context.wall_s),
        },
        "stages_cpu_s": {
            "load": _r(run.load.cpu_s),
            "validate_compile": _r(run.compile.cpu_s),
            "render": _r(run.render.cpu_s),
            "total": _r(total.cpu_s),
            "floor_render": _r(floor.render.cpu_s),
        },
        "devices_per_s": _r(run.devices / total.wall_s, 1) if total.wall_s else None,
        "ratio_total_to_floor": _r(ratio, 2),
        "ratio_total_to_floor_cpu": _r(ratio_cpu, 2),
        "peak_rss_mib": _r(peak, 1),
        "peak_vm_hwm_mib": None if mem.get("vm_hwm_mib") is None else _r(float(mem["vm_hwm_mib"]), 1),
        "memory_run_total_wall_s": _r(float(mem["total_wall_s"])),
        "output": {"files": run.files, "bytes": run.output_bytes, "floor_output_identical": run.digest == floor.digest},
        "goals": {
            "total_under_10s": total.wall_s < GOAL_TOTAL_S,
            "peak_under_1GiB": peak < GOAL_PEAK_MIB,
            "within_2x_floor": ratio <= GOAL_RATIO,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_at_end": _r(os.getloadavg()[0], 2),
        },
    }


def _table(data: dict[str, Any]) -> Any:
    from rich.table import Table

    w, c = data["stages_wall_s"], data["stages_cpu_s"]
    f = data["fleet"]
    table = Table(
        title=f"qoectl compile benchmark: {f['devices']} devices, {f['journeys']} journeys, "
        f"{len(f['platforms'])} platforms"
    )
    table.add_column("stage")
    table.add_column("wall s", justify="right")
    table.add_column("CPU s", justify="right")
    for label, key in (
        ("load (read YAML, schema, model)", "load"),
        ("validate + compile", "validate_compile"),
        ("render (context + templates)", "render"),
        ("total", "total"),
        ("floor: templates only", "floor_render"),
    ):
        table.add_row(label, f"{w[key]:.2f}", f"{c[key]:.2f}")
    table.add_section()
    g = data["goals"]

    def mark(ok: bool) -> str:
        return "[green]met[/]" if ok else "[red]NOT met[/]"

    table.add_row("devices / second", f"{data['devices_per_s']:.0f}", "")
    table.add_row(
        f"total / floor (goal <= {GOAL_RATIO:g})",
        f"{data['ratio_total_to_floor']:.2f}",
        f"{data['ratio_total_to_floor_cpu']:.2f}",
        end_section=False,
    )
    table.add_row("peak RSS, fresh process (MiB)", f"{data['peak_rss_mib']:.0f}", "")
    table.add_row(f"goal: total < {GOAL_TOTAL_S:g} s", mark(g["total_under_10s"]), "")
    table.add_row("goal: peak < 1 GiB", mark(g["peak_under_1GiB"]), "")
    table.add_row("goal: within 2x of the floor", mark(g["within_2x_floor"]), "")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--journeys", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file.")
    parser.add_argument("--keep", type=Path, help="Generate the fleet here and keep it (default: a temp dir).")
    parser.add_argument("--check", action="store_true", help="Exit 1 when a goal is not met.")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="qoectl-bench-") as tmp:
        root = args.keep or Path(tmp) / "policies"
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            gen = Stage()
            task = progress.add_task("generate fleet YAML", total=None)
            with timed(gen):
                info = fleet.generate(root, args.devices, args.journeys, args.seed)
            progress.update(task, total=1, completed=1)
            # Memory first, while this process is still small (see child_main).
            mem_task = progress.add_task("peak memory (fresh process)", total=None)
            mem = measure_peak_rss(root)
            progress.update(mem_task, total=1, completed=1)
            load_task = progress.add_task("load + validate + compile", total=info.devices)
            render_task = progress.add_task("render (pipeline)", total=info.devices)
            floor_task = progress.add_task("render (floor)", total=info.devices)

            def advancer(task: Any) -> Advance:
                def advance(n: int = 1) -> None:
                    progress.advance(task, n)

                return advance

            result, run = run_pipeline(root, advancer(load_task), advancer(render_task))
            floor = run_floor(result, advancer(floor_task))
            del result
    data = report(info, gen, run, floor, mem)
    Console().print(_table(data))
    if not data["output"]["floor_output_identical"]:
        console.print("[red]the floor rendered different text than the pipeline[/]")
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}")
    return 1 if args.check and not all(data["goals"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
