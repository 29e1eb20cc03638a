"""The one-way pipeline: load -> validate -> compile -> render.

``build`` runs the first three stages and returns everything at once; callers
(CLI, tests, benchmarks) render only when there are no errors.

For rendering a whole fleet, ``validate_policy`` does the policy-wide part once
and ``render_fleet`` compiles and renders the devices, in several worker
processes when asked (``jobs``), handing each device's rendered files to a
caller-supplied handler *where they were rendered*, so that only what the
handler returns (hashes, diffs) crosses between processes. The diagnostics,
the plans and the rendered text are the same whatever ``jobs`` is.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from controller.compile.adjustments import effective_policy
from controller.compile.budgets import Budget
from controller.compile.capabilities import check_plan
from controller.compile.compiler import NETWORK_CONTROL_PCT, CompileContext, compile_device, derive_budgets
from controller.errors import Diagnostic, errors_only, sort_diagnostics
from controller.load.loader import load_policy
from controller.model import Device, Policy
from controller.parallel import WorkerStats, can_fork, forked
from controller.plan import DevicePlan
from controller.render import get_renderer, platforms
from controller.render import render_plan as render_plan  # its callers import it from here too
from controller.validate.adjustments import check_adjustments
from controller.validate.checks import run_checks

T = TypeVar("T")
Progress = Callable[[int], None]

# Below this many devices a fleet is compiled and rendered in this process: starting workers costs more.
MIN_PARALLEL_DEVICES = 200


class _Diagnosed:
    """``errors`` and ``ok`` of anything that carries the diagnostics of a build."""

    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> list[Diagnostic]:
        return errors_only(self.diagnostics)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Build(_Diagnosed):
    policy: Policy
    budgets: dict[str, Budget]
    plans: tuple[DevicePlan, ...]
    diagnostics: tuple[Diagnostic, ...]

    def plan(self, device: str) -> DevicePlan | None:
        return next((p for p in self.plans if p.device == device), None)


@dataclass(frozen=True)
class Validated:
    """A loaded policy after every policy-wide check: what compiling any one device needs.

    ``diagnostics`` are the load, budget and policy-check problems in the order
    they were found (the device-level ones come from :func:`compile_one`);
    ``devices`` are in the order plans are made (by name).
    """

    policy: Policy
    budgets: dict[str, Budget]
    diagnostics: tuple[Diagnostic, ...]
    context: CompileContext
    devices: tuple[Device, ...]


def _is_sdwan_edge(device: Device) -> bool:
    renderer = get_renderer(device.platform)
    return renderer is not None and renderer.sdwan_edge(device)


def _reserved_pct(device: Device) -> float:
    """What the plan keeps of each of the device's links for itself: the network-control class, where it has one."""
    renderer = get_renderer(device.platform)
    return NETWORK_CONTROL_PCT if renderer is not None and renderer.network_control else 0.0


def validate_policy(policy: Policy, load_problems: Iterable[Diagnostic] = ()) -> Validated:
    """Budgets, every policy-wide check and the per-compile facts (the part of a build done once)."""
    diags = list(load_problems)
    budgets, budget_problems = derive_budgets(policy)
    diags += budget_problems
    diags += run_checks(policy, budgets, _reserved_pct)
    adjustment_problems, kept = check_adjustments(policy, _reserved_pct)
    diags += adjustment_problems
    # The adjustments without an error are compiled on top of the journeys (journeys moved to strict priority in
    # that class); the policy stays as written.
    compiled = policy if len(kept) == len(policy.adjustments) else dataclasses.replace(policy, adjustments=kept)
    context = CompileContext.build(effective_policy(compiled), budgets, sdwan=_is_sdwan_edge)
    devices = tuple(sorted(policy.devices, key=lambda d: d.name))
    return Validated(policy, budgets, tuple(diags), context, devices)


def compile_one(v: Validated, device: Device) -> tuple[DevicePlan | None, list[Diagnostic]]:
    """One device's plan (None when its platform has no renderer) and the problems found compiling it."""
    renderer = get_renderer(device.platform)
    if renderer is None:
        problem = Diagnostic(
            device.origin.at("platform"),
            device.origin.field("platform"),
            f"no renderer for platform '{device.platform}' yet",
            f"platforms with a renderer: {', '.join(platforms())}",
        )
        return None, [problem]
    plan = compile_device(
        device,
        v.policy,
        v.budgets,
        sdwan=renderer.sdwan_edge(device),
        context=v.context,
        network_control=renderer.network_control,
    )
    problems, notes = check_plan(plan, renderer, device, v.policy)
    return (dataclasses.replace(plan, notes=notes) if notes else plan), problems


def compile_policy(
    policy: Policy,
    load_problems: Iterable[Diagnostic] = (),
    progress: Progress | None = None,
) -> Build:
    v = validate_policy(policy, load_problems)
    diags = list(v.diagnostics)
    plans = []
    for device in v.devices:
        plan, problems = compile_one(v, device)
        diags += problems
        if plan is None:
            continue
        plans.append(plan)
        if progress:
            progress(1)
    return Build(policy, v.budgets, tuple(plans), tuple(sort_diagnostics(diags)))


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """The cyclic collector paused while a whole fleet is built, restored afterwards.

    Loading and compiling allocate millions of small objects that all stay alive
    (the model and every plan); the collector scanned them again and again while
    finding nothing: a build leaves no cyclic garbage (5 objects for 2,000
    devices, none for a broken fleet; rendering none either). With only its
    first threshold raised it still took about a sixth of a 10,000-device load,
    so it is now off for the block. The raised thresholds stay for processes
    that turn it back on inside the block (the workers of :func:`render_fleet`).
    """
    old = gc.get_threshold()
    was_enabled = gc.isenabled()
    gc.set_threshold(max(old[0], 100_000), max(old[1], 50), max(old[2], 100))
    gc.disable()
    try:
        yield
    finally:
        gc.set_threshold(*old)
        if was_enabled:
            gc.enable()


def build(path: Path | str, progress: Progress | None = None, jobs: int = 1) -> Build:
    """Load and compile a policy repository. Raises PolicyError when it cannot even be read.

    ``jobs`` > 1 parses a large repository's YAML in that many worker processes.
    """
    with bulk_allocation():
        policy, problems = load_policy(path, jobs)
        return compile_policy(policy, problems, progress)


# --------------------------------------------------------------------------- whole fleets, in workers


@dataclass(frozen=True, slots=True)
class DeviceOutput(Generic[T]):
    """One rendered device: what the handler returned for its files, and its plan's notes."""

    device: str
    platform: str
    notes: tuple[str, ...]
    value: T


@dataclass(frozen=True)
class FleetRun(_Diagnosed, Generic[T]):
    """A whole fleet compiled and, when there were no errors, rendered: one output per device, by name."""

    policy: Policy
    budgets: dict[str, Budget]
    diagnostics: tuple[Diagnostic, ...]
    outputs: tuple[DeviceOutput[T], ...]  # empty when there are errors
    jobs: int  # processes that compiled and rendered (1: this process)
    workers: tuple[WorkerStats, ...] = ()


Handler = Callable[[DevicePlan, dict[str, str]], T]
_Chunk = tuple[list[Diagnostic], list[DeviceOutput[Any]]]


def _compile_render(v: Validated, handler: Handler[T], render: bool, start: int, stop: int) -> _Chunk:
    """Devices ``start:stop``: compile, check, and (when ``render``) render and hand to ``handler``.

    A device whose own checks found an error is not rendered: the run fails anyway.
    """
    diags: list[Diagnostic] = []
    outputs: list[DeviceOutput[Any]] = []
    for device in v.devices[start:stop]:
        plan, problems = compile_one(v, device)
        diags += problems
        if plan is None or not render or errors_only(problems):
            continue
        outputs.append(DeviceOutput(plan.device, plan.platform, plan.notes, handler(plan, render_plan(plan))))
    return diags, outputs


def device_chunks(n: int, workers: int) -> list[tuple[int, int]]:
    """``[(start, stop)]`` over ``n`` devices: about 16 chunks per worker (so a slow chunk does not leave
    the others idle at the end), at most 100 devices each (so progress moves)."""
    size = max(1, min(100, -(-n // (workers * 16))))
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def render_fleet(
    v: Validated,
    handler: Handler[T],
    jobs: int = 1,
    progress: Progress | None = None,
    min_parallel: int = MIN_PARALLEL_DEVICES,
) -> FleetRun[T]:
    """Compile every device of ``v``, and render each one into ``handler`` when there are no errors.

    ``jobs`` > 1 forks that many workers (where fork exists and the fleet has at
    least ``min_parallel`` devices); each takes chunks of devices in turn, and the
    results are put back in device order, so diagnostics and outputs are exactly
    those of ``jobs=1``. ``handler`` runs in the worker and must return something
    picklable; ``progress`` is called here, in this process, with the number of
    devices done as each chunk finishes.
    """
    render = not errors_only(v.diagnostics)
    n = len(v.devices)
    workers = min(jobs, n) if (jobs > 1 and n >= min_parallel and can_fork()) else 1
    chunks = device_chunks(n, workers)
    stats: tuple[WorkerStats, ...] = ()
    if workers == 1:
        results = []
        for start, stop in chunks:
            results.append(_compile_render(v, handler, render, start, stop))
            if progress:
                progress(stop - start)
    else:
        results, stats = _in_workers(v, handler, render, chunks, workers, progress)
    diags = list(v.diagnostics)
    outputs: list[DeviceOutput[T]] = []
    for chunk_diags, chunk_outputs in results:
        diags += chunk_diags
        outputs += chunk_outputs
    diagnostics = tuple(sort_diagnostics(diags))
    if errors_only(diagnostics):
        outputs = []
    return FleetRun(v.policy, v.budgets, diagnostics, tuple(outputs), workers, stats)


def _in_workers(
    v: Validated,
    handler: Handler[T],
    render: bool,
    chunks: list[tuple[int, int]],
    workers: int,
    progress: Progress | None,
) -> tuple[list[_Chunk], tuple[WorkerStats, ...]]:
    """Chunks in ``workers`` forked processes (:func:`controller.parallel.forked`); results in chunk order."""
    for renderer in {r for d in v.devices if (r := get_renderer(d.platform)) is not None}:
        for _, template in renderer.outputs:
            renderer.template(template)  # compiled once here, inherited by every worker

    def chunk(bounds: tuple[int, int]) -> _Chunk:
        return _compile_render(v, handler, render, *bounds)

    done: dict[int, _Chunk] = {}
    stats: list[WorkerStats] = []
    for number, result in forked(chunk, chunks, workers, stats):
        done[number] = result
        if progress:
            progress(chunks[number][1] - chunks[number][0])
    return [done[k] for k in range(len(chunks))], tuple(sorted(stats, key=lambda s: s.pid))
