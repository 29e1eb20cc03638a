"""The one-way pipeline: load -> validate -> compile -> render.

``build`` runs the first three stages and returns everything at once; callers
(CLI, tests, benchmarks) render only when there are no errors.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from controller.compile.budgets import Budget
from controller.compile.capabilities import check_plan
from controller.compile.compiler import compile_device, derive_budgets
from controller.compile.plan import DevicePlan
from controller.errors import Diagnostic, PolicyError, errors_only, sort_diagnostics
from controller.load.loader import load_policy
from controller.model import Policy
from controller.render import get_renderer, platforms
from controller.render.base import SDWAN_SLA
from controller.validate.checks import run_checks


@dataclass(frozen=True)
class Build:
    policy: Policy
    budgets: dict[str, Budget]
    plans: tuple[DevicePlan, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> list[Diagnostic]:
        return errors_only(self.diagnostics)

    @property
    def ok(self) -> bool:
        return not self.errors

    def plan(self, device: str) -> DevicePlan | None:
        return next((p for p in self.plans if p.device == device), None)


def compile_policy(
    policy: Policy,
    load_problems: Iterable[Diagnostic] = (),
    progress: Callable[[int], None] | None = None,
) -> Build:
    diags = list(load_problems)
    budgets, budget_problems = derive_budgets(policy)
    diags += budget_problems
    diags += run_checks(policy, budgets)
    plans = []
    for device in sorted(policy.devices, key=lambda d: d.name):
        renderer = get_renderer(device.platform)
        if renderer is None:
            diags.append(
                Diagnostic(
                    device.origin.at("platform"),
                    device.origin.field("platform"),
                    f"no renderer for platform '{device.platform}' yet",
                    f"platforms with a renderer: {', '.join(platforms())}",
                )
            )
            continue
        caps = renderer.capabilities_for(device.features)
        plan = compile_device(device, policy, budgets, sdwan=SDWAN_SLA in caps)
        problems, notes = check_plan(plan, renderer, device, policy)
        diags += problems
        plans.append(dataclasses.replace(plan, notes=notes) if notes else plan)
        if progress:
            progress(1)
    return Build(policy, budgets, tuple(plans), tuple(sort_diagnostics(diags)))


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Fewer cyclic-GC passes while a whole fleet is built, restored afterwards.

    Loading and compiling allocate millions of small objects that all stay alive
    (the model and every plan). Python's collector re-scans them every few hundred
    allocations, which cost about a fifth of a 10,000-device build while finding
    almost nothing: these objects do not form cycles. A higher first threshold
    keeps collection on, just less often.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 100_000), max(old[1], 50), max(old[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*old)


def build(path: Path | str, progress: Callable[[int], None] | None = None) -> Build:
    """Load and compile a policy repository. Raises PolicyError when it cannot even be read."""
    with bulk_allocation():
        policy, problems = load_policy(path)
        return compile_policy(policy, problems, progress)


def render_plan(plan: DevicePlan) -> dict[str, str]:
    renderer = get_renderer(plan.platform)
    if renderer is None:  # pragma: no cover - build() already reported it
        raise PolicyError([])
    return renderer.render(plan)
