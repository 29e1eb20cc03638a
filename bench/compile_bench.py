"""Compile benchmark: a generated 10,000-device fleet through the real pipeline, against its floor.

What it measures, in one run on this machine:

* **pipeline, N processes** - exactly what ``qoectl plan --jobs N`` does before
  writing files: ``load_policy`` (the YAML files parsed in N forked workers),
  ``validate_policy`` (budgets, every policy-wide check, the per-compile
  facts) in this process, then
  ``render_fleet``: every device compiled, checked and rendered in N forked
  workers, which send back each file's SHA-256;
* **pipeline, 1 process** - the same in this process only, timed per stage
  (``build``'s two halves, then ``render_plan`` for every device);
* **floor** - the same templates rendered from contexts computed beforehand
  (``renderer.context(plan)`` untimed, only ``renderer.render_context(ctx)``
  timed): what rendering costs with every other stage taken away. Measured in
  one process and in N forked workers, so each pipeline has a like-for-like
  floor;
* **peak memory** - the N-process pipeline again in a fresh subprocess, which
  reports its own peak RSS and every worker's, so the benchmark's own data
  (generator, floor contexts) is not counted.

* **validation at scale** - a second repository with 50,000 journeys and a few
  dozen devices (:mod:`bench.journeys`): ``validate_policy`` on it, against
  reading the same repository (``load_policy``) and against validating a tenth
  of the journeys, both measured in this run. The checks that compare journeys
  with each other (overlapping traffic) are what grows here.

Ratios, not absolute numbers, are what to compare across machines: the goal
is total/floor <= 2. Results go to ``bench/results/compile.json``.

    python bench/compile_bench.py                  # 10,000 devices, 50 journeys
    python bench/compile_bench.py --devices 2000   # quicker
    python bench/compile_bench.py --validation-journeys 0   # without the validation case
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import multiprocessing
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
from bench import journeys as journey_fleet  # noqa: E402
from controller.load.loader import load_policy  # noqa: E402
from controller.parallel import default_jobs  # noqa: E402
from controller.pipeline import (  # noqa: E402
    Build,
    FleetRun,
    WorkerStats,
    bulk_allocation,
    compile_policy,
    device_chunks,
    render_fleet,
    render_plan,
    validate_policy,
)
from controller.plan import DevicePlan  # noqa: E402
from controller.render import get_renderer  # noqa: E402
from controller.render.base import Renderer  # noqa: E402

RESULTS = HERE / "results" / "compile.json"
GOAL_TOTAL_S = 10.0
GOAL_PEAK_MIB = 1024.0
GOAL_RATIO = 2.0
# Validating N journeys against reading them, and against validating N/10 (10 for linear work, 100 for pairwise).
GOAL_VALIDATE_TO_LOAD = 1.0
GOAL_VALIDATE_SCALING = 20.0

Advance = Callable[[int], None]
FileHashes = tuple[tuple[str, str, int], ...]  # (file, SHA-256, bytes) per rendered file


@dataclass
class Stage:
    """Wall and CPU seconds of one stage (CPU shows how much a busy machine inflated wall time)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0


@contextmanager
def timed(stage: Stage, children: bool = False) -> Iterator[None]:
    """Add the block's wall and CPU seconds to ``stage``; ``children``: also the CPU of worker processes it reaped."""
    wall, cpu, kids = time.perf_counter(), time.process_time(), _children_cpu()
    try:
        yield
    finally:
        stage.wall_s += time.perf_counter() - wall
        stage.cpu_s += time.process_time() - cpu + ((_children_cpu() - kids) if children else 0.0)


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def _nothing(_: int = 1) -> None:
    return None


def calibrate() -> float:
    """CPU seconds of a fixed pure-Python loop: how fast this machine is right now.

    On a shared VM the same stage varies by tens of percent between runs (host
    contention shows in CPU seconds too); this figure, taken at the start and the
    end of a run, says whether a slow run was a slow machine.
    """
    start = time.process_time()
    total = 0
    for i in range(3_000_000):
        total += i
    return time.process_time() - start


class Digest:
    """One SHA-256 over every device's files in device order: (name, SHA-256 of the text) per file."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.files = 0
        self.bytes = 0

    def add(self, device: str, hashes: FileHashes) -> None:
        for name, sha, size in hashes:
            self._h.update(f"{device}/{name}\0{sha}\0".encode())
            self.files += 1
            self.bytes += size

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def file_hashes(files: dict[str, str]) -> FileHashes:
    out = []
    for name in sorted(files):
        data = files[name].encode()
        out.append((name, hashlib.sha256(data).hexdigest(), len(data)))
    return tuple(out)


def _hash_files(plan: DevicePlan, files: dict[str, str]) -> FileHashes:
    """The pipeline's handler: runs in the worker, sends back only the hashes."""
    return file_hashes(files)


# --------------------------------------------------------------------------- the pipeline


@dataclass
class PipelineRun:
    """The pipeline in ``jobs`` processes. ``compile`` is validate+compile in one process, validate alone in N."""

    jobs: int = 1
    load: Stage = field(default_factory=Stage)
    compile: Stage = field(default_factory=Stage)
    render: Stage = field(default_factory=Stage)  # with jobs > 1: compile + render in the workers (wall)
    workers_cpu_s: float = 0.0
    workers: tuple[WorkerStats, ...] = ()
    devices: int = 0
    files: int = 0
    output_bytes: int = 0
    digest: str = ""

    @property
    def total(self) -> Stage:
        return Stage(
            self.load.wall_s + self.compile.wall_s + self.render.wall_s,
            self.load.cpu_s + self.compile.cpu_s + self.render.cpu_s + self.workers_cpu_s,
        )


def run_pipeline(
    root: Path, advance_compile: Advance = _nothing, advance_render: Advance = _nothing
) -> tuple[Build, PipelineRun]:
    """One process: ``build(root)`` split into its two timed halves, then ``render_plan`` for every device."""
    run = PipelineRun()
    with bulk_allocation():
        with timed(run.load):
            policy, problems = load_policy(root)
        with timed(run.compile):
            result = compile_policy(policy, problems, advance_compile)
    if not result.ok:
        shown = "\n".join(d.format() for d in result.errors[:20])
        raise RuntimeError(f"the generated fleet does not validate ({len(result.errors)} errors):\n{shown}")
    digest = Digest()
    with timed(run.render):
        for plan in result.plans:
            digest.add(plan.device, file_hashes(render_plan(plan)))
            advance_render(1)
    run.devices = len(result.plans)
    run.files, run.output_bytes, run.digest = digest.files, digest.bytes, digest.hexdigest()
    return result, run


def run_parallel(root: Path, jobs: int, advance: Advance = _nothing) -> PipelineRun:
    """``jobs`` processes: load and validate here, then compile + render in forked workers (``render_fleet``)."""
    run = PipelineRun(jobs=jobs)
    with bulk_allocation():
        with timed(run.load, children=True):  # the YAML files are parsed in ``jobs`` workers
            policy, problems = load_policy(root, jobs)
        with timed(run.compile):
            validated = validate_policy(policy, problems)
        with timed(run.render):
            fleet_run: FleetRun[FileHashes] = render_fleet(validated, _hash_files, jobs, advance, min_parallel=0)
    if not fleet_run.ok:
        shown = "\n".join(d.format() for d in fleet_run.errors[:20])
        raise RuntimeError(f"the generated fleet does not validate ({len(fleet_run.errors)} errors):\n{shown}")
    digest = Digest()
    for out in fleet_run.outputs:
        digest.add(out.device, out.value)
    run.jobs = fleet_run.jobs
    run.workers = fleet_run.workers
    run.workers_cpu_s = sum(w.cpu_s for w in fleet_run.workers)
    run.devices = len(fleet_run.outputs)
    run.files, run.output_bytes, run.digest = digest.files, digest.bytes, digest.hexdigest()
    return run


# --------------------------------------------------------------------------- the floor


@dataclass
class FloorRun:
    context: Stage = field(default_factory=Stage)
    render: Stage = field(default_factory=Stage)  # one process
    render_parallel: Stage = field(default_factory=Stage)  # ``jobs`` forked workers (wall; CPU of the workers)
    jobs: int = 1
    digest: str = ""
    digest_parallel: str = ""


# The floor's contexts, set just before forking the floor's workers (they inherit them; nothing is pickled).
_FLOOR_CONTEXTS: list[tuple[str, Renderer, dict[str, Any]]] = []


def _floor_chunk(bounds: tuple[int, int]) -> tuple[list[tuple[str, FileHashes]], float]:
    start = time.process_time()
    out = [(device, file_hashes(r.render_context(ctx))) for device, r, ctx in _FLOOR_CONTEXTS[bounds[0] : bounds[1]]]
    return out, time.process_time() - start


def _floor_in_workers(jobs: int, advance: Advance) -> tuple[Digest, float]:
    """Render the precomputed contexts in ``jobs`` forked workers, chunked like ``render_fleet``."""
    n = len(_FLOOR_CONTEXTS)
    chunks = device_chunks(n, jobs)
    digest = Digest()
    cpu = 0.0
    gc.freeze()  # as render_fleet does, so the workers do not copy the pages they share with this process
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for rendered, chunk_cpu in pool.imap(_floor_chunk, chunks):
                for device, hashes in rendered:
                    digest.add(device, hashes)
                cpu += chunk_cpu
                advance(len(rendered))
    finally:
        gc.unfreeze()
    return digest, cpu


def run_floor(
    result: Build, advance: Advance = _nothing, jobs: int = 1, advance_parallel: Advance = _nothing
) -> FloorRun:
    """The same templates from precomputed contexts: only ``render_context`` is the floor.

    Measured in this process and, when ``jobs`` > 1, again in ``jobs`` forked
    workers (so that an N-process pipeline has an N-process floor to compare with).
    """
    global _FLOOR_CONTEXTS
    run = FloorRun(jobs=jobs)
    with timed(run.context):
        contexts = []
        for plan in result.plans:
            renderer = get_renderer(plan.platform)
            assert renderer is not None
            contexts.append((plan.device, renderer, renderer.context(plan)))
    digest = Digest()
    with timed(run.render):
        outputs = []
        for _, renderer, ctx in contexts:
            outputs.append(renderer.render_context(ctx))
            advance(1)
    for (device, _, _), files in zip(contexts, outputs, strict=True):
        digest.add(device, file_hashes(files))
    run.digest = digest.hexdigest()
    del outputs
    if jobs > 1:
        _FLOOR_CONTEXTS = contexts
        try:
            wall = time.perf_counter()
            par, cpu = _floor_in_workers(jobs, advance_parallel)
            run.render_parallel = Stage(time.perf_counter() - wall, cpu)
        finally:
            _FLOOR_CONTEXTS = []
        run.digest_parallel = par.hexdigest()
    else:
        run.render_parallel, run.digest_parallel = run.render, run.digest
    return run


# --------------------------------------------------------------------------- validation at scale


@dataclass
class ValidationRun:
    """``validate_policy`` on many journeys, with its two baselines from the same run.

    ``load`` reads the same repository (YAML, schema, model); ``small`` validates
    a repository of a tenth of the journeys, so ``validate / small`` is about 10
    for work that grows with the journeys and 100 for work over every pair.
    """

    journeys: int
    small_journeys: int
    load: Stage = field(default_factory=Stage)
    validate: Stage = field(default_factory=Stage)
    small: Stage = field(default_factory=Stage)
    errors: int = 0

    def ratios(self) -> dict[str, float]:
        return {
            "validate_to_load": _r(_ratio(self.validate.wall_s, self.load.wall_s), 2),
            "validate_to_tenth": _r(_ratio(self.validate.wall_s, self.small.wall_s), 2),
        }


def validation_data(run: ValidationRun) -> dict[str, Any]:
    """The validation case as reported: seconds, both ratios and the goals."""
    ratios = run.ratios()
    return {
        "journeys": run.journeys,
        "tenth_journeys": run.small_journeys,
        "wall_s": {
            "load": _r(run.load.wall_s),
            "validate": _r(run.validate.wall_s),
            "validate_tenth": _r(run.small.wall_s),
        },
        "cpu_s": {
            "load": _r(run.load.cpu_s),
            "validate": _r(run.validate.cpu_s),
            "validate_tenth": _r(run.small.cpu_s),
        },
        "errors": run.errors,
        "ratios": ratios,
        "goals": {
            "validate_within_load": ratios["validate_to_load"] <= GOAL_VALIDATE_TO_LOAD,
            "validate_scales_with_journeys": ratios["validate_to_tenth"] <= GOAL_VALIDATE_SCALING,
        },
    }


def _validate(root: Path, stage: Stage, load: Stage | None = None) -> int:
    """Load (timed into ``load`` when given) and validate (timed into ``stage``) ``root``; the errors found."""
    with bulk_allocation():
        with timed(load if load is not None else Stage()):
            policy, problems = load_policy(root)
        with timed(stage):
            validated = validate_policy(policy, problems)
    return sum(1 for d in validated.diagnostics if d.severity == "error")


def run_validation(root: Path, journeys: int) -> ValidationRun:
    """Generate ``journeys`` and a tenth of them under ``root`` and time validating both (:class:`ValidationRun`)."""
    small = max(1, journeys // 10)
    big = journey_fleet.generate(root / "all", journeys)
    tenth = journey_fleet.generate(root / "tenth", small)
    run = ValidationRun(big.journeys, tenth.journeys)
    run.errors = _validate(tenth.root, run.small)
    run.errors += _validate(big.root, run.validate, run.load)
    gc.collect()
    return run


# --------------------------------------------------------------------------- memory


def _vm_hwm_mib() -> float | None:
    """This process's own RSS high-water mark (Linux ``VmHWM``), or None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def child_main(root: Path, jobs: int) -> None:
    """The whole N-process pipeline in this fresh process; print its peak memory and times as JSON.

    Linux carries the spawning process's RSS high-water mark into a child's
    ``ru_maxrss`` across fork+exec, so the parent spawns this child before it
    loads anything big, and ``VmHWM`` (this process's own memory only) is
    reported beside it as a cross-check. Each worker reports its own ``VmHWM``,
    which counts the pages it shares with this process (it was forked from it)
    as well; the sum over all processes is therefore an upper bound, and
    "private" (what each worker alone holds when it finishes) the estimate of
    what the workers add.
    """
    run = run_parallel(root, jobs)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child
    workers = [
        {"pid": w.pid, "vm_hwm_mib": _mib(w.peak_rss_kib), "private_mib": _mib(w.private_kib), "cpu_s": w.cpu_s}
        for w in run.workers
    ]
    data = {
        "jobs": run.jobs,
        "peak_rss_mib": peak_kib / 1024.0,
        "vm_hwm_mib": _vm_hwm_mib(),
        "largest_child_rss_mib": children_kib / 1024.0,
        "workers": workers,
        "total_wall_s": run.total.wall_s,
        "devices": run.devices,
    }
    print(json.dumps(data))


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024.0


def measure_peak_rss(root: Path, jobs: int = 1) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(root), "--jobs", str(jobs)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def memory_figures(mem: dict[str, Any]) -> dict[str, float]:
    """Peak memory of the whole run: the main process plus every worker, as an upper bound and an estimate."""
    main = float(mem["vm_hwm_mib"] if mem.get("vm_hwm_mib") is not None else mem["peak_rss_mib"])
    workers = mem.get("workers", [])
    hwm = [float(w["vm_hwm_mib"]) for w in workers if w.get("vm_hwm_mib") is not None]
    private = [float(w["private_mib"]) for w in workers if w.get("private_mib") is not None]
    if len(hwm) < len(workers):  # no /proc: the largest child, once per worker
        hwm = [float(mem.get("largest_child_rss_mib", 0.0))] * len(workers)
    return {
        "main_mib": main,
        "sum_all_processes_mib": main + sum(hwm),
        "main_plus_worker_private_mib": main + (sum(private) if len(private) == len(workers) else sum(hwm)),
    }


# --------------------------------------------------------------------------- report


def _r(x: float, digits: int = 3) -> float:
    return round(x, digits)


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def report(
    info: fleet.FleetInfo,
    gen: Stage,
    run: PipelineRun,
    floor: FloorRun,
    mem: dict[str, Any],
    par: PipelineRun | None = None,
    at_start: dict[str, float] | None = None,
    validation: ValidationRun | None = None,
) -> dict[str, Any]:
    """``run`` is the one-process pipeline, ``par`` the N-process one (the headline figures; ``run`` if None).

    ``at_start``: the load average and :func:`calibrate` taken when the run began; ``validation``: the
    validation case, when it was run.
    """
    start = at_start or {}
    par = par or run
    total, ptotal = run.total, par.total
    memory = memory_figures(mem)
    peak = memory["sum_all_processes_mib"]
    ratio_single = _ratio(total.wall_s, floor.render.wall_s)
    ratio_par = _ratio(ptotal.wall_s, floor.render_parallel.wall_s)
    data: dict[str, Any] = {
        "fleet": {
            "devices": info.devices,
            "journeys": info.journeys,
            "sites": info.sites,
            "interfaces": info.interfaces,
            "policy_files": info.files,
            "platforms": sorted(set(info.platforms)),
        },
        "jobs": par.jobs,
        "stages_wall_s": {
            "generate": _r(gen.wall_s),
            "load": _r(par.load.wall_s),
            "validate": _r(par.compile.wall_s),
            "compile_render_workers": _r(par.render.wall_s),
            "total": _r(ptotal.wall_s),
            "floor_render_workers": _r(floor.render_parallel.wall_s),
            "floor_context_untimed": _r(floor.context.wall_s),
        },
        "one_process_wall_s": {
            "load": _r(run.load.wall_s),
            "validate_compile": _r(run.compile.wall_s),
            "render": _r(run.render.wall_s),
            "total": _r(total.wall_s),
            "floor_render": _r(floor.render.wall_s),
        },
        "stages_cpu_s": {
            "load": _r(par.load.cpu_s),
            "validate": _r(par.compile.cpu_s),
            "compile_render_workers": _r(par.workers_cpu_s),
            "total": _r(ptotal.cpu_s),
            "floor_render_workers": _r(floor.render_parallel.cpu_s),
        },
        "one_process_cpu_s": {
            "load": _r(run.load.cpu_s),
            "validate_compile": _r(run.compile.cpu_s),
            "render": _r(run.render.cpu_s),
            "total": _r(total.cpu_s),
            "floor_render": _r(floor.render.cpu_s),
        },
        "devices_per_s": _r(par.devices / ptotal.wall_s, 1) if ptotal.wall_s else None,
        "ratios": {
            # The goal's ratio, like for like: N processes against the floor in N processes.
            "total_to_floor": _r(ratio_par, 2),
            "one_process_total_to_one_process_floor": _r(ratio_single, 2),
            "total_to_one_process_floor": _r(_ratio(ptotal.wall_s, floor.render.wall_s), 2),
            "total_to_floor_cpu": _r(_ratio(ptotal.cpu_s, floor.render_parallel.cpu_s), 2),
        },
        "memory_mib": {
            "peak_all_processes": _r(peak, 1),
            "main_process_peak": _r(memory["main_mib"], 1),
            "main_plus_worker_private": _r(memory["main_plus_worker_private_mib"], 1),
            "main_ru_maxrss": _r(float(mem["peak_rss_mib"]), 1),
            "workers": mem.get("workers", []),
        },
        "memory_run_total_wall_s": _r(float(mem["total_wall_s"])),
        "output": {
            "files": par.files,
            "bytes": par.output_bytes,
            "floor_output_identical": par.digest == run.digest == floor.digest == floor.digest_parallel,
        },
        "goals": {
            "total_under_10s": ptotal.wall_s < GOAL_TOTAL_S,
            "peak_under_1GiB": peak < GOAL_PEAK_MIB,
            "within_2x_floor": ratio_par <= GOAL_RATIO,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "calibration_cpu_s_at_start": _r(start.get("calibration", 0.0)),
            "calibration_cpu_s_at_end": _r(calibrate()),
            "load_average_1m_at_start": _r(start.get("load_average", 0.0), 2),
            "load_average_1m_at_end": _r(os.getloadavg()[0], 2),
        },
    }
    if validation is not None:
        data["validation"] = validation_data(validation)
    return data


def _table(data: dict[str, Any]) -> Any:
    from rich.table import Table

    w, c = data["stages_wall_s"], data["stages_cpu_s"]
    w1, c1 = data["one_process_wall_s"], data["one_process_cpu_s"]
    f, jobs = data["fleet"], data["jobs"]
    table = Table(
        title=f"qoectl compile benchmark: {f['devices']} devices, {f['journeys']} journeys, "
        f"{len(f['platforms'])} platforms, {jobs} worker processes"
    )
    table.add_column("stage")
    table.add_column("wall s", justify="right")
    table.add_column("CPU s", justify="right")
    for label, key in (
        ("load (read YAML, schema, model)", "load"),
        ("validate (checks, per-compile facts)", "validate"),
        (f"compile + render, {jobs} workers", "compile_render_workers"),
        ("total", "total"),
        (f"floor: templates only, {jobs} workers", "floor_render_workers"),
    ):
        table.add_row(label, f"{w[key]:.2f}", f"{c[key]:.2f}")
    table.add_section()
    for label, key in (
        ("1 process: validate + compile", "validate_compile"),
        ("1 process: render (context + templates)", "render"),
        ("1 process: total", "total"),
        ("1 process: floor", "floor_render"),
    ):
        table.add_row(label, f"{w1[key]:.2f}", f"{c1[key]:.2f}")
    table.add_section()
    g, r, m = data["goals"], data["ratios"], data["memory_mib"]

    def mark(ok: bool) -> str:
        return "[green]met[/]" if ok else "[red]NOT met[/]"

    table.add_row("devices / second", f"{data['devices_per_s']:.0f}", "")
    mach = data["machine"]
    table.add_row(
        "calibration loop, start / end (CPU s)",
        f"{mach['calibration_cpu_s_at_start']:.2f} / {mach['calibration_cpu_s_at_end']:.2f}",
        "",
    )
    table.add_row(
        f"total / floor, {jobs} processes each", f"{r['total_to_floor']:.2f}", f"{r['total_to_floor_cpu']:.2f}"
    )
    table.add_row("total / floor, 1 process each", f"{r['one_process_total_to_one_process_floor']:.2f}", "")
    table.add_row(f"total ({jobs} processes) / floor (1 process)", f"{r['total_to_one_process_floor']:.2f}", "")
    table.add_row("peak memory, all processes (MiB)", f"{m['peak_all_processes']:.0f}", "")
    table.add_row("  main process + workers' private (MiB)", f"{m['main_plus_worker_private']:.0f}", "")
    table.add_row(f"goal: total < {GOAL_TOTAL_S:g} s", mark(g["total_under_10s"]), "")
    table.add_row("goal: peak < 1 GiB", mark(g["peak_under_1GiB"]), "")
    table.add_row(f"goal: within 2x of the floor ({jobs} processes each)", mark(g["within_2x_floor"]), "")
    if "validation" in data:
        table.add_section()
        _validation_rows(table, data["validation"])
    return table


def _validation_rows(table: Any, v: dict[str, Any]) -> None:
    vw, vc, vr, vg = v["wall_s"], v["cpu_s"], v["ratios"], v["goals"]

    def mark(ok: bool) -> str:
        return "[green]met[/]" if ok else "[red]NOT met[/]"

    table.add_row(f"validation case: load {v['journeys']} journeys", f"{vw['load']:.2f}", f"{vc['load']:.2f}")
    table.add_row(f"validate {v['journeys']} journeys", f"{vw['validate']:.2f}", f"{vc['validate']:.2f}")
    table.add_row(
        f"validate {v['tenth_journeys']} journeys", f"{vw['validate_tenth']:.2f}", f"{vc['validate_tenth']:.2f}"
    )
    table.add_row("validate / load (same repository)", f"{vr['validate_to_load']:.2f}", "")
    table.add_row("validate / a tenth (linear: 10)", f"{vr['validate_to_tenth']:.2f}", "")
    table.add_row(f"goal: validate <= {GOAL_VALIDATE_TO_LOAD:g}x load", mark(vg["validate_within_load"]), "")
    table.add_row(
        f"goal: validate / a tenth <= {GOAL_VALIDATE_SCALING:g}", mark(vg["validate_scales_with_journeys"]), ""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--journeys", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="Worker processes (default: CPUs).")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file.")
    parser.add_argument("--keep", type=Path, help="Generate the fleet here and keep it (default: a temp dir).")
    parser.add_argument("--check", action="store_true", help="Exit 1 when a goal is not met.")
    parser.add_argument(
        "--validation-journeys",
        type=int,
        default=50_000,
        help="Journeys of the validation case (0: skip it).",
    )
    parser.add_argument(
        "--validation-only",
        action="store_true",
        help="Only the validation case (results to bench/results/validation.json unless --out).",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.jobs)
        return 0

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    at_start = {"load_average": os.getloadavg()[0], "calibration": calibrate()}
    if args.validation_only:
        return _validation_only(args, console, at_start)
    with tempfile.TemporaryDirectory(prefix="qoectl-bench-") as tmp:
        root = args.keep or Path(tmp) / "policies"
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description:<32}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        # No refresh thread: the benchmark forks workers while the bars are shown.
        with Progress(*columns, console=console, auto_refresh=False) as progress:
            gen = Stage()
            task = progress.add_task("generate fleet YAML", total=None)
            progress.refresh()
            with timed(gen):
                info = fleet.generate(root, args.devices, args.journeys, args.seed)
            progress.update(task, total=1, completed=1)
            # Memory first, while this process is still small (see child_main).
            mem_task = progress.add_task(f"peak memory ({args.jobs} processes)", total=None)
            progress.refresh()
            mem = measure_peak_rss(root, args.jobs)
            progress.update(mem_task, total=1, completed=1)

            def advancer(description: str) -> Advance:
                task = progress.add_task(description, total=info.devices)
                progress.refresh()
                last = [time.perf_counter()]

                def advance(n: int = 1) -> None:
                    # Redrawn at most 10 times a second: a redraw per device would cost more than a device.
                    progress.advance(task, n)
                    if time.perf_counter() - last[0] >= 0.1:
                        progress.refresh()
                        last[0] = time.perf_counter()

                return advance

            par = run_parallel(root, args.jobs, advancer(f"pipeline, {args.jobs} processes"))
            result, run = run_pipeline(root, advancer("compile, 1 process"), advancer("render, 1 process"))
            floor = run_floor(
                result, advancer("floor, 1 process"), args.jobs, advancer(f"floor, {args.jobs} processes")
            )
            del result
            validation = None
            if args.validation_journeys > 0:
                vtask = progress.add_task(f"validate {args.validation_journeys} journeys", total=None)
                progress.refresh()
                validation = run_validation(Path(tmp) / "validation", args.validation_journeys)
                progress.update(vtask, total=1, completed=1)
    data = report(info, gen, run, floor, mem, par, at_start, validation)
    Console().print(_table(data))
    if not data["output"]["floor_output_identical"]:
        console.print("[red]the floor or the workers rendered different text than the pipeline[/]")
        return 1
    if validation is not None and validation.errors:
        console.print(f"[red]the validation case does not validate ({validation.errors} errors)[/]")
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}")
    goals = [*data["goals"].values(), *data.get("validation", {}).get("goals", {}).values()]
    return 1 if args.check and not all(goals) else 0


def _validation_only(args: argparse.Namespace, console: Any, at_start: dict[str, float]) -> int:
    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory(prefix="qoectl-bench-") as tmp:
        console.print(f"validation case: {args.validation_journeys} journeys ...")
        validation = run_validation(Path(tmp), args.validation_journeys)
    data = {
        "validation": validation_data(validation),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "calibration_cpu_s_at_start": _r(at_start["calibration"]),
            "calibration_cpu_s_at_end": _r(calibrate()),
            "load_average_1m_at_start": _r(at_start["load_average"], 2),
            "load_average_1m_at_end": _r(os.getloadavg()[0], 2),
        },
    }
    table = Table(title=f"qoectl validation benchmark: {validation.journeys} journeys")
    table.add_column("stage")
    table.add_column("wall s", justify="right")
    table.add_column("CPU s", justify="right")
    _validation_rows(table, data["validation"])
    Console().print(table)
    out = args.out if args.out != RESULTS else RESULTS.with_name("validation.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    console.print(f"wrote {out}")
    if validation.errors:
        console.print(f"[red]the validation case does not validate ({validation.errors} errors)[/]")
        return 1
    return 1 if args.check and not all(data["validation"]["goals"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
