"""What to check for one journey: the targets it states decide, derived network budgets explain.

A check is *primary* when it decides pass or fail: what the journey's YAML
states itself, i.e. its experience target (voice MOS, Apdex, response time,
error rate, start-up, rebuffering) and any network budget pinned there
(one-way delay, jitter, loss). Budgets the compiler *derived* are *secondary*
whenever the journey states a target of its own: they explain a failure
("loss 3 % over its 0.26 % budget") but never decide it, so a voice call at MOS
4.1 passes even if its delay is over the derived share, and a conferencing
journey that pins delay, jitter and loss is not held to the throughput derived
from its bitrate. Only a journey that states nothing measurable (video
conferencing with just a bitrate) is judged on its derived budgets. The DSCP
seen on arrival is always secondary: a re-marked journey is a finding, the
experience is the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from controller.compile.budgets import Budget
from controller.model import BulkTarget, InteractiveTarget, Journey, VideoTarget, VoiceTarget

Op = Literal["<=", ">=", "=="]
UNITS = {
    "mos": "",
    "apdex": "",
    "response_time_ms": "ms",
    "error_rate_pct": "%",
    "startup_s": "s",
    "rebuffering_pct": "%",
    "one_way_delay_ms": "ms",
    "jitter_ms": "ms",
    "loss_pct": "%",
    "throughput_kbps": "kbit/s",
    "dscp": "",
}
STATISTIC = {
    "mos": "E-model (G.107) of the mean delay, jitter and loss",
    "apdex": "Apdex of the transactions",
    "response_time_ms": "95th percentile",
    "error_rate_pct": "failed / all transactions",
    "startup_s": "mean",
    "rebuffering_pct": "mean, or stall time / (playing + stall time) of the sessions",
    "one_way_delay_ms": "mean",
    "jitter_ms": "mean",
    "loss_pct": "mean",
    "throughput_kbps": "mean",
    "dscp": "every packet",
}


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str  # a metric, or "mos" / "apdex"
    op: Op
    target: float
    primary: bool
    source: Literal["target", "budget", "plan"]  # journey target, derived budget, compiled marking

    @property
    def unit(self) -> str:
        return UNITS.get(self.name, "")

    def passes(self, measured: float) -> bool:
        if self.op == "<=":
            return measured <= self.target + 1e-9
        if self.op == ">=":
            return measured >= self.target - 1e-9
        return abs(measured - self.target) < 1e-9


PINNABLE = ("one_way_delay_ms", "jitter_ms", "loss_pct")


def _network(
    budget: Budget | None, pinned: tuple[str, ...], derived_primary: bool, with_jitter: bool = True
) -> list[CheckSpec]:
    """Delay, jitter and loss checks: pinned ones are stated targets (primary); derived ones primary only when asked."""
    if budget is None:
        return []
    out = []
    for name in PINNABLE:
        if name == "jitter_ms" and not with_jitter:
            continue
        value = getattr(budget, name)
        if value is not None:
            primary = name in pinned or derived_primary
            out.append(CheckSpec(name, "<=", float(value), primary, "target" if name in pinned else "budget"))
    return out


def checks_for(journey: Journey, budget: Budget | None, dscp: int | None) -> tuple[CheckSpec, ...]:
    """Every check of ``journey``, primary ones first; empty when nothing in its target is measurable."""
    t = journey.target
    out: list[CheckSpec] = []
    if isinstance(t, VoiceTarget):
        pinned = tuple(n for n in PINNABLE if getattr(t, n) is not None)
        if t.mos is not None:
            out.append(CheckSpec("mos", ">=", t.mos, True, "target"))
        out += _network(budget, pinned, derived_primary=t.mos is None and not pinned)
    elif isinstance(t, InteractiveTarget):
        out.append(CheckSpec("apdex", ">=", t.apdex, True, "target"))
        if t.response_time_ms is not None:
            out.append(CheckSpec("response_time_ms", "<=", t.response_time_ms, True, "target"))
        if t.error_rate_pct is not None:
            out.append(CheckSpec("error_rate_pct", "<=", t.error_rate_pct, True, "target"))
        out += _network(budget, (), derived_primary=False, with_jitter=False)
    elif isinstance(t, VideoTarget):
        pinned = tuple(n for n in PINNABLE if getattr(t, n) is not None)
        if t.startup_s is not None:
            out.append(CheckSpec("startup_s", "<=", t.startup_s, True, "target"))
        if t.rebuffering_pct is not None:
            out.append(CheckSpec("rebuffering_pct", "<=", t.rebuffering_pct, True, "target"))
        states_targets = bool(out) or bool(pinned)  # else only the derived budgets say what "in target" is
        out += _network(budget, pinned, derived_primary=not states_targets)
        if budget is not None and budget.min_throughput_kbps:
            out.append(CheckSpec("throughput_kbps", ">=", budget.min_throughput_kbps, not states_targets, "budget"))
    elif isinstance(t, BulkTarget) and t.min_throughput_kbps > 0:
        out.append(CheckSpec("throughput_kbps", ">=", t.min_throughput_kbps, True, "target"))
    if not any(c.primary for c in out):
        return ()
    if dscp is not None:
        out.append(CheckSpec("dscp", "==", float(dscp), False, "plan"))
    return tuple(sorted(out, key=lambda c: not c.primary))


def plot_metric(journey: Journey, checks: tuple[CheckSpec, ...]) -> str:
    """The one measure drawn over time for the journey: its first primary check."""
    return next(c.name for c in checks if c.primary) if checks else ""
