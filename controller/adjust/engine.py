"""One cycle's decision: observation + policy + state -> actions, the new Adjustments entries, the next state.

The rules are docs/loop.md's. In short, per cycle:

1. **streaks**: each journey@segment counts consecutive violating (``fail``)
   and good (``pass``) cycles; an ``unknown`` cycle, or one without a verdict,
   resets both. Each WAN interface counts cycles of *bloat* (some journey's
   one-way delay p50 above the path's base delay by more than ``bloat_ms``
   while the router's own queue there is short) and of *calm* (every journey's
   delay within ``calm_ms`` of the base).
2. **drift** (remediation 1): a device that drifted from the compiled policy
   (or never got it) is applied again; nothing else changes on it this cycle.
3. **perception gap**: a journey@segment whose users' feedback disagrees with
   the measurements is left alone, and the loop says why.
4. **violations**, critical journeys first, each after ``act_after``
   consecutive violating cycles, the first remediation that applies, in order
   of least disruption:
   2. wrong DSCP on arrival and the journey matches on the arriving DSCP:
      mark it at the device's edge;
   3. its class congested in the router's queue (drops, or a backlog of
      ``queue_ms`` at its guarantee): raise the journey's guarantee one step
      (``max_step_pct``) up to its ``loop.max_kbps``, squeezing lower-priority
      journeys down to their floors when the link has no room;
   4. still congested and the journey allows it: move it to strict priority,
      if the priority cap holds on every link it reaches;
   5. delay up while the router's queue is short (the bottleneck is
      downstream): lower the shaper towards the measured capacity.
5. **capacity** (cake-autorate-like, per WAN interface): after ``act_after``
   cycles of bloat, lower the shaper to ``headroom`` x the measured capacity
   (the rate delivered, or the downstream hint when lower), by at most
   ``max_step_pct`` a cycle, never below ``min_kbps`` or a rate where the
   link's guarantees would break a validation rule; after ``relax_after`` calm
   cycles raise it back by ``raise_step_pct`` of its nominal rate, back to
   ``bandwidth_kbps`` (entry removed), and above it up to ``max_kbps`` only
   while the shaper is the bottleneck.
6. **path steering** (``controller.adjust.paths``), before the violations: a
   journey out of target on an SD-WAN edge whose current transport misses its
   SLA class moves to another transport it may use that meets it; back home
   after ``path_hold`` cycles of the home transport meeting it.
7. **relax**: after ``relax_after`` good cycles (doubled each time a change
   had to be made again soon after being relaxed) a strict-priority move is
   undone, a raised guarantee stepped back down, and squeezed journeys get
   their guarantee back when the link has room. Marking fixes stay.

Guardrails on every change: at most ``max_changes`` changes a cycle, at least
``min_interval_s`` between changes to one device, the limits the policy states
(inventory ``min_kbps``/``max_kbps``, the journey's ``loop`` block), and every
validation rule: the new entries are compiled and validated with the policy,
and a change that would not validate is dropped (and said so). Every decision,
"no action" included, comes with its reason and the measurements behind it.
The loop changes only the entries of its own document (``qoectl-loop``);
entries of other Adjustments documents are respected, never edited.
"""

from __future__ import annotations

import dataclasses
import math
import time as _time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from controller.adjust.document import LOOP_DOCUMENT
from controller.adjust.observation import JourneyFigures, Observation, QueueState, SegmentStatus
from controller.adjust.state import LoopState
from controller.compile.adjustments import Adjusted, strict_class
from controller.compile.compiler import in_scope
from controller.evaluate.engine import Verdict
from controller.model import (
    PRIORITY_RANK,
    Adjustment,
    BandwidthChange,
    BulkTarget,
    Change,
    Device,
    Interface,
    Journey,
    MarkingChange,
    Policy,
    ShaperChange,
    StrictPriorityChange,
)
from controller.pipeline import Build, _reserved_pct, compile_policy
from controller.spec.types import dscp_name
from controller.validate.adjustments import (
    bandwidth_range,
    effective_class,
    has_arrival_dscp,
    journey_kbps,
    journeys_at,
    link_loads,
    marking_conflicts,
)

REASON_MAX = 500  # an entry's reason is free text of at most 500 characters
ActionKind = Literal[
    "reapply",
    "mark",
    "raise_guarantee",
    "squeeze",
    "strict_priority",
    "lower_shaper",
    "raise_shaper",
    "relax_guarantee",
    "unsqueeze",
    "relax_strict_priority",
    "move_path",
    "path_back",
]
Value = float | str | None


@dataclass(frozen=True, slots=True)
class Limits:
    """The loop's own guardrails (the policy states the rest: ``min_kbps``/``max_kbps``, the journeys' ``loop``)."""

    act_after: int = 3  # N: consecutive violating cycles before acting
    relax_after: int = 5  # M: consecutive good cycles before relaxing (raising a shaper back)
    min_interval_s: float = 120.0  # between two changes to one device
    max_changes: int = 2  # changes (remediations, relax steps, reapplies) per cycle
    max_step_pct: float = 25.0  # the most one guarantee or shaper moves in one change, % of its current value
    bloat_ms: float = 15.0  # one-way delay p50 above the path's base delay that counts as queueing
    calm_ms: float = 5.0  # below this above the base delay: no queueing anywhere (headroom)
    queue_ms: float = 5.0  # the router's queue is short below this much waiting at its rate
    headroom: float = 0.95  # shape to this share of the measured capacity
    raise_step_pct: float = 5.0  # raise a shaper back by this share of its nominal rate per step
    max_backoff: int = 4  # relaxing waits at most relax_after x 2^max_backoff good cycles
    loaded: float = 0.9  # delivered / shaper rate at or above which the shaper is the bottleneck
    path_hold: int = 5  # cycles the home transport meets the SLA before a journey moves back; none moves twice within

    def __post_init__(self) -> None:
        if self.act_after < 1 or self.relax_after < 1 or self.path_hold < 1:
            raise ValueError("act_after, relax_after and path_hold must be at least 1")
        if self.max_changes < 0 or self.max_backoff < 0:
            raise ValueError("max_changes and max_backoff must be at least 0")
        if not (0 < self.max_step_pct <= 100 and 0 < self.raise_step_pct <= 100 and 0 < self.headroom <= 1):
            raise ValueError("max_step_pct and raise_step_pct are 0-100 %, headroom 0-1")
        if self.calm_ms > self.bloat_ms or self.min_interval_s < 0:
            raise ValueError("calm_ms must not exceed bloat_ms; min_interval_s must not be negative")

    def relax_cycles(self, backoff: int) -> int:
        return self.relax_after * (1 << min(backoff, self.max_backoff))


@dataclass(frozen=True, slots=True)
class Action:
    """One change of the cycle: what, to which journey and device, why, from what to what."""

    kind: ActionKind
    journey: str | None
    device: str | None
    reason: str
    before: Value
    after: Value
    interface: str | None = None
    measurements: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "journey": self.journey,
            "device": self.device,
            "interface": self.interface,
            "reason": self.reason,
            "before": self.before,
            "after": self.after,
            "measurements": dict(self.measurements),
        }


@dataclass(frozen=True, slots=True)
class Hold:
    """Something out of target, or a change due, that the loop left alone this cycle, and why."""

    reason: str
    journey: str | None = None
    segment: str | None = None
    device: str | None = None
    measurements: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "segment": self.segment,
            "device": self.device,
            "reason": self.reason,
            "measurements": dict(self.measurements),
        }


@dataclass(frozen=True)
class Decision:
    """The outcome of one cycle.

    ``adjustments`` are the entries of the loop's Adjustments document after the cycle (``previous``: before);
    ``build`` is the policy compiled with them (validated: ``build.ok``); ``devices`` those to apply: the drifted
    ones and every device whose plan the new entries change. ``state`` is what to save for the next cycle.
    """

    cycle: int
    time: float
    verdicts: Mapping[str, Verdict]
    actions: tuple[Action, ...]
    holds: tuple[Hold, ...]
    adjustments: tuple[Adjustment, ...]
    previous: tuple[Adjustment, ...]
    devices: tuple[str, ...]
    state: LoopState
    build: Build

    @property
    def changed(self) -> bool:
        """Does the loop's Adjustments document change?"""
        return _entries(self.adjustments) != _entries(self.previous)

    def to_json(self, applied: bool = False) -> dict[str, Any]:
        """The cycle's JSON line (``qoectl loop --json``): cycle, verdicts, actions, applied, and the holds."""
        return {
            "cycle": self.cycle,
            "time": iso(self.time),
            "verdicts": dict(sorted(self.verdicts.items())),
            "actions": [a.to_json() for a in self.actions],
            "applied": applied,
            "holds": [h.to_json() for h in self.holds],
            "devices": list(self.devices),
        }


def _entries(entries: Iterable[Adjustment]) -> list[tuple[tuple[str, ...], Change]]:
    return [(a.key, a.change) for a in entries]


def iso(t: float) -> str:
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(t))


class DecisionError(ValueError):
    """The loop cannot decide on this input (a policy that does not validate)."""


def decide(build: Build, observation: Observation, state: LoopState, limits: Limits | None = None) -> Decision:
    """Decide one cycle. ``build`` is the policy as compiled now (its Adjustments included): see the module doc.

    The policy must validate: the loop decides on the policy people wrote and reviewed, never around its errors
    (an entry of its own document that no longer validates, e.g. after ``loop.max_kbps`` was lowered, is one
    of them: fix or remove it by merge request). Raises :class:`DecisionError` otherwise.
    """
    if not build.ok:
        shown = "; ".join(d.format() for d in build.errors[:5])
        raise DecisionError(f"the policy does not validate ({len(build.errors)} error(s)): {shown}")
    return _Cycle(build, observation, state, limits or Limits()).run()


# --------------------------------------------------------------------------- the cycle


@dataclass(frozen=True, slots=True)
class _Skip:
    """The remediation does not apply: try the next one."""

    reason: str


@dataclass(frozen=True, slots=True)
class _Wait:
    """The remediation applies but a guardrail holds it: wait, do not escalate."""

    reason: str


_Outcome = _Skip | _Wait | None  # None: done


@dataclass
class _Undo:
    actions: int
    entries: dict[tuple[str, ...], Adjustment | None]
    last_change: dict[str, float | None]
    touched: set[str]
    restore: Callable[[], None] | None = None  # puts back what else the change's rule recorded


def _measures(values: Mapping[str, float | None]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, round(float(v), 3)) for k, v in values.items() if v is not None and math.isfinite(v)))


def _sojourn_ms(backlog_bytes: int, rate_kbps: float) -> float:
    """How long the backlog waits at the rate: bits / (kbit/s) = ms."""
    return backlog_bytes * 8.0 / rate_kbps if rate_kbps > 0 else math.inf


def _kbps(x: float) -> float:
    return float(math.floor(x + 1e-9))


def _scavenger(j: Journey) -> bool:
    return j.priority == "scavenger" or (isinstance(j.target, BulkTarget) and j.target.scavenger)


class _Cycle:
    def __init__(self, build: Build, obs: Observation, state: LoopState, limits: Limits) -> None:
        self.build = build
        self.policy: Policy = build.policy
        self.obs = obs
        self.limits = limits
        self.state = state
        self.now = obs.time
        self.cycle = state.cycle + 1
        self.stamp = iso(obs.time)
        self.bad: dict[str, int] = {}
        self.good: dict[str, int] = {}
        self.bloat: dict[str, int] = {}
        self.calm: dict[str, int] = {}
        self.last_change = dict(state.last_change)
        self.backoff = dict(state.backoff)
        self.relaxed = dict(state.relaxed)
        self.direction = dict(state.direction)
        self.path_good = dict(state.path_good)
        self.path_moved = dict(state.path_moved)
        self.steered: set[str] = set()  # journey@segment dealt with by path steering this cycle
        self.fixed = tuple(a for a in self.policy.adjustments if a.document != LOOP_DOCUMENT)
        self.fixed_keys = {a.key for a in self.fixed}
        self.mine: dict[tuple[str, ...], Adjustment] = {
            a.key: a for a in self.policy.adjustments if a.document == LOOP_DOCUMENT
        }
        self.previous = tuple(self.mine.values())
        self.actions: list[Action] = []
        self.holds: list[Hold] = []
        self.undo: list[_Undo] = []
        self.touched: set[str] = set()
        self.devices = {d.name: d for d in reversed(self.policy.devices)}
        self.figures = {f.key: f for f in obs.figures}
        self.queues = {(q.device, q.interface): q for q in obs.queues}
        self.drifted = {d.device: d for d in obs.drift if d.drifted and d.device in self.devices}
        self.status = {s.key: s for s in obs.segments}

    # ----------------------------------------------------------------- helpers

    def adjusted(self) -> Adjusted:
        return Adjusted.of((*self.fixed, *self.mine.values()))

    def reserved(self, device: Device) -> float:
        return _reserved_pct(device)  # the plan's own share of each link, as validation counts it

    def hold(self, reason: str, **where: Any) -> None:
        self.holds.append(Hold(reason=reason, **where))

    def may_change(self, devices: Iterable[str]) -> str | None:
        if self.changes >= self.limits.max_changes:
            return f"{self.limits.max_changes} change(s) made this cycle already (the most per cycle)"
        for d in sorted(set(devices)):
            if d in self.touched:
                return f"device {d} is changed in this cycle already"
            last = self.last_change.get(d)
            if last is not None and self.now - last < self.limits.min_interval_s:
                return (
                    f"device {d} was changed {self.now - last:.0f} s ago; at least {self.limits.min_interval_s:g} s "
                    "between changes to one device"
                )
        return None

    @property
    def changes(self) -> int:
        return len(self.undo)

    def entry(self, change: Change, reason: str, measurements: tuple[tuple[str, float], ...]) -> Adjustment:
        text = reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 3] + "..."
        return Adjustment(change, text, measurements, self.stamp, LOOP_DOCUMENT)

    def commit(
        self,
        actions: list[Action],
        entries: Mapping[tuple[str, ...], Adjustment | None],
        devices: Iterable[str],
        restore: Callable[[], None] | None = None,
    ) -> None:
        names = set(devices)
        self.undo.append(
            _Undo(
                len(self.actions),
                {k: self.mine.get(k) for k in entries},
                {d: self.last_change.get(d) for d in names},
                set(self.touched),
                restore,
            )
        )
        for key, value in entries.items():
            if value is None:
                self.mine.pop(key, None)
            else:
                self.mine[key] = value
        for d in names:
            self.last_change[d] = self.now
        self.touched |= names
        self.actions += actions

    def rollback(self) -> list[Action]:
        u = self.undo.pop()
        dropped = self.actions[u.actions :]
        del self.actions[u.actions :]
        for key, value in u.entries.items():
            if value is None:
                self.mine.pop(key, None)
            else:
                self.mine[key] = value
        for d, t in u.last_change.items():
            if t is None:
                self.last_change.pop(d, None)
            else:
                self.last_change[d] = t
        self.touched = u.touched
        if u.restore is not None:
            u.restore()
        return dropped

    def tightened(self, key: tuple[str, ...]) -> None:
        """A change made again: soon after it was relaxed, relaxing it next time waits twice as long."""
        name = "/".join(key)
        relaxed = self.relaxed.get(name)
        window = 10 * self.limits.relax_cycles(self.backoff.get(name, 0))
        if relaxed is not None and self.cycle - relaxed <= window:
            self.backoff[name] = min(self.limits.max_backoff, self.backoff.get(name, 0) + 1)
        elif name in self.backoff and relaxed is not None:
            del self.backoff[name]

    def base_delay(self, device: Device, iface: Interface) -> float:
        t = self.policy.transport(iface.transport) if iface.transport else None
        if iface.base_delay_ms is not None:
            return iface.base_delay_ms
        return t.base_delay_ms if t else 0.0

    def rate(self, device: Device, iface: Interface, adjusted: Adjusted | None = None) -> int:
        a = adjusted or self.adjusted()
        return a.shaper.get((device.name, iface.name), iface.bandwidth_kbps or 0)

    def path(self, journey: Journey, segment: str) -> tuple[Device, Interface] | str:
        """The WAN egress a journey@segment's traffic leaves by, or why it is not known."""
        fig = self.figures.get(f"{journey.name}@{segment}")
        if fig is not None and fig.device and fig.interface:
            dev = self.devices.get(fig.device)
            iface = next((i for i in dev.wan_interfaces if i.name == fig.interface), None) if dev else None
            if dev is None or iface is None:
                return f"the measurement names {fig.device} {fig.interface}, not a WAN interface of the inventory"
            return dev, iface
        devices = [d for d in self.policy.devices_at(segment) if in_scope(journey, d, self.policy.context_of(d))]
        wans = [(d, i) for d in devices for i in d.wan_interfaces if i.bandwidth_kbps]
        if len(wans) > 1:
            wans = [(d, i) for d, i in wans if (d.name, i.name) in self.queues] or wans
        if len(wans) == 1:
            return wans[0]
        if not wans:
            return f"no device at {segment} carries {journey.name} over a WAN interface"
        names = ", ".join(f"{d.name} {i.name}" for d, i in wans)
        return f"{journey.name}@{segment} may leave by any of {names}: the measurements do not say which"

    def via(self, device: Device, iface: Interface) -> list[JourneyFigures]:
        out = []
        for f in self.figures.values():
            j = self.policy.journey(f.journey)
            if j is None:
                continue
            p = self.path(j, f.segment)
            if not isinstance(p, str) and p[0].name == device.name and p[1].name == iface.name:
                out.append(f)
        return out

    def excess(self, f: JourneyFigures | None, device: Device, iface: Interface) -> float | None:
        if f is None or f.one_way_delay_p50_ms is None:
            return None
        return f.one_way_delay_p50_ms - self.base_delay(device, iface)

    def short(self, q: QueueState, rate: float, classes: Iterable[str] = ()) -> bool:
        """The router's own queue on the interface is short: little waiting at the shaper, no drops anywhere.

        With ``classes`` (those of the journeys whose delay rose) and the queue state of each of them, only
        their queues count: a class the shaper drops in (bulk beyond its share) is the shaper doing its job,
        not where those journeys wait. One such class short is enough: a journey whose delay rose while its
        own class at the router neither waits nor drops waits downstream (another delayed class may be
        congested at the router as well, e.g. video bursts above their guarantee).
        """
        wanted = set(classes)
        picked = [c for c in q.classes if c.class_name in wanted]
        if wanted and len(picked) == len(wanted):
            return any(_sojourn_ms(c.backlog_bytes, rate) < self.limits.queue_ms and c.drops == 0 for c in picked)
        return (
            _sojourn_ms(q.backlog_bytes, rate) < self.limits.queue_ms
            and q.drops == 0
            and all(c.drops == 0 for c in q.classes)
        )

    def classes_of(self, figures: Iterable[JourneyFigures]) -> set[str]:
        adjusted = self.adjusted()
        out = set()
        for f in figures:
            j = self.policy.journey(f.journey)
            if j is not None:
                out.add(effective_class(j, adjusted, self.policy.classes))
        return out

    def expected_dscp(self, journey: Journey, device: Device) -> int | None:
        plan = self.build.plan(device.name)
        if plan is None:
            return None
        return next((r.dscp for r in plan.markings if r.journey == journey.name), None)

    def fits(self, device: Device, adjusted: Adjusted) -> str | None:
        """None when every WAN link of the device keeps the caps with ``adjusted``; else what breaks."""
        for load in link_loads(self.policy, device, adjusted, self.reserved(device)):
            if load.strict_over:
                return (
                    f"strict priority on {device.name} {load.interface} would be {load.strict_kbps:.0f} of "
                    f"{load.rate_kbps} kbps, above the {self.policy.settings.priority_cap_pct:g} % priority cap"
                )
            if load.guaranteed_over:
                return (
                    f"{device.name} {load.interface} would guarantee {load.guaranteed_kbps:.0f} kbps, more than the "
                    f"{load.guaranteed_cap_kbps:.0f} kbps it can"
                )
        return None

    def with_entry(self, *entries: Adjustment) -> Adjusted:
        merged = dict(self.mine)
        for e in entries:
            merged[e.key] = e
        return Adjusted.of((*self.fixed, *merged.values()))

    def with_shaper(self, device: Device, iface: Interface, kbps: int) -> Adjusted:
        return self.with_entry(self.entry(ShaperChange(device.name, iface.name, kbps), "", ()))

    # ----------------------------------------------------------------- the passes

    def run(self) -> Decision:
        from controller.adjust.paths import steer_paths  # it works on this class: imported once it exists

        self.streaks()
        self.reapply()
        steer_paths(self)
        self.violations()
        self.capacity()
        self.relax()
        result = self.validate()
        return self.decision(result)

    def streaks(self) -> None:
        for s in self.obs.segments:
            if s.verdict == "fail":
                self.bad[s.key] = self.state.bad.get(s.key, 0) + 1
            elif s.verdict == "pass":
                self.good[s.key] = self.state.good.get(s.key, 0) + 1
        for (dev_name, iface_name), q in sorted(self.queues.items()):
            device = self.devices.get(dev_name)
            iface = next((i for i in device.wan_interfaces if i.name == iface_name), None) if device else None
            if device is None or iface is None:
                continue
            via = self.via(device, iface)
            excess = [e for f in via if (e := self.excess(f, device, iface)) is not None]
            if not excess:
                continue
            key = f"{dev_name}/{iface_name}"
            delayed = self.classes_of(f for f in via if (self.excess(f, device, iface) or 0) > self.limits.bloat_ms)
            if max(excess) > self.limits.bloat_ms and self.short(q, self.rate(device, iface), delayed):
                self.bloat[key] = self.state.bloat.get(key, 0) + 1
            elif max(excess) < self.limits.calm_ms:
                self.calm[key] = self.state.calm.get(key, 0) + 1

    def reapply(self) -> None:
        """Remediation 1: a device that drifted from the compiled policy, or never got it, gets it again."""
        for name, drift in sorted(self.drifted.items()):
            detail = f" ({drift.detail})" if drift.detail else ""
            why = self.may_change([name])
            if why:
                self.hold(
                    f"device {name} drifted from the compiled policy{detail}; not applied again yet: {why}", device=name
                )
                continue
            reason = f"device {name} drifted from (or never got) the compiled policy{detail}: apply it again"
            self.commit([Action("reapply", None, name, reason, "drifted", "compiled policy")], {}, [name])

    def ordered(self) -> list[SegmentStatus]:
        def rank(s: SegmentStatus) -> tuple[int, str, str]:
            j = self.policy.journey(s.journey)
            return (PRIORITY_RANK[j.priority] if j else 9, s.journey, s.segment)

        return sorted(self.obs.segments, key=rank)

    def violations(self) -> None:
        for s in self.ordered():
            figures = self.figures.get(s.key)
            m = dict(figures.measurements()) if figures else {}
            if s.perception_gap:
                verdict = "within its targets" if s.verdict == "pass" else f"{s.verdict} against its targets"
                self.hold(
                    f"perception gap at {s.key}: the network is {verdict}, the users' feedback says otherwise "
                    f"({s.perception_gap}); the loop changes nothing for it",
                    journey=s.journey,
                    segment=s.segment,
                    measurements=_measures(m),
                )
                continue
            if s.verdict != "fail" or s.key in self.steered:
                continue
            n = self.bad.get(s.key, 0)
            m["bad_cycles"] = float(n)
            if n < self.limits.act_after:
                self.hold(
                    f"{s.key} out of target for {n} of the {self.limits.act_after} cycles the loop waits for",
                    journey=s.journey,
                    segment=s.segment,
                    measurements=_measures(m),
                )
                continue
            self.remediate(s, m)

    def remediate(self, s: SegmentStatus, m: dict[str, float]) -> None:
        journey = self.policy.journey(s.journey)
        where: dict[str, Any] = {"journey": s.journey, "segment": s.segment}
        if journey is None:
            self.hold(f"journey {s.journey} is not in the policy", **where)
            return
        path = self.path(journey, s.segment)
        if isinstance(path, str):
            self.hold(f"{s.key} out of target; {path}", measurements=_measures(m), **where)
            return
        device, iface = path
        where["device"] = device.name
        if device.name in self.drifted:
            self.hold(
                f"{s.key} out of target, but {device.name} drifted from the compiled policy: it is applied again "
                "first, and its measurements do not reflect the policy",
                measurements=_measures(m),
                **where,
            )
            return
        figures = self.figures.get(s.key)
        notes: list[str] = []
        outcome: _Outcome
        # 2. marking
        expected = self.expected_dscp(journey, device)
        wrong = [d for d in (figures.dscp_seen if figures else ()) if expected is not None and d != expected]
        if wrong and expected is not None:
            m["dscp_expected"] = float(expected)
            m["dscp_seen"] = float(wrong[0])
            outcome = self.mark(journey, device, wrong, expected, s, m)
            if self.settle(outcome, s, m, where, notes):
                return
        q = self.queues.get((device.name, iface.name))
        if q is None and not self.queues:
            self.hold(
                f"{s.key} out of target; no queue readings: the measurements (files, Prometheus) do not read the "
                f"routers' queues, so the loop cannot tell whether {device.name} {iface.name} queues it or the "
                "bottleneck is downstream: the guarantee and capacity remediations hold"
                + "".join(f"; {n}" for n in notes),
                measurements=_measures(m),
                **where,
            )
            return
        if q is None:
            self.hold(
                f"{s.key} out of target; no queue state of {device.name} {iface.name}: the loop cannot tell where "
                "the bottleneck is" + "".join(f"; {n}" for n in notes),
                measurements=_measures(m),
                **where,
            )
            return
        adjusted = self.adjusted()
        rate = self.rate(device, iface, adjusted)
        cls = effective_class(journey, adjusted, self.policy.classes)
        plan = self.build.plan(device.name)
        iface_plan = next((i for i in plan.interfaces if i.name == iface.name), None) if plan else None
        alloc = iface_plan.allocation(cls) if iface_plan else None
        cq = q.of_class(cls)
        class_ms = _sojourn_ms(cq.backlog_bytes, alloc.guaranteed_kbps) if cq and alloc else 0.0
        congested = cq is not None and (cq.drops > 0 or class_ms >= self.limits.queue_ms)
        excess = self.excess(figures, device, iface)
        m.update(
            {
                "shaper_kbps": float(rate),
                "root_backlog_ms": round(_sojourn_ms(q.backlog_bytes, rate), 3),
                "class_drops": float(cq.drops) if cq else 0.0,
                "class_backlog_ms": round(class_ms, 3),
            }
        )
        if excess is not None:
            m["delay_excess_ms"] = excess
        if q.delivered_kbps is not None:
            m["delivered_kbps"] = q.delivered_kbps
        if congested:
            outcome = self.raise_guarantee(journey, device, iface, cls, s, m)
            if self.settle(outcome, s, m, where, notes):
                return
            outcome = self.strict(journey, s, m)
            if self.settle(outcome, s, m, where, notes):
                return
            self.hold(
                f"{s.key} out of target, class {cls} congested on {device.name} {iface.name}, and no remediation "
                "is left within the policy's limits: " + "; ".join(notes),
                measurements=_measures(m),
                **where,
            )
            return
        if excess is not None and excess > self.limits.bloat_ms and self.short(q, rate, [cls]):
            outcome = self.lower(device, iface, q, journey, m)
            if self.settle(outcome, s, m, where, notes):
                return
            self.hold(f"{s.key} out of target: " + "; ".join(notes), measurements=_measures(m), **where)
            return
        reason = (
            f"{s.key} out of target, but neither the router's queues on {device.name} {iface.name} (class {cls}: "
            f"no drops, {class_ms:.1f} ms waiting) nor its delay"
            + (f" ({excess:.1f} ms above the path's base)" if excess is not None else " (not measured)")
            + " point at a cause QoS there can remove: look at the path (the transport's loss or jitter) "
            "or the application"
        )
        self.hold(reason + "".join(f"; {n}" for n in notes), measurements=_measures(m), **where)

    def settle(
        self, outcome: _Outcome, s: SegmentStatus, m: dict[str, float], where: dict[str, Any], notes: list[str]
    ) -> bool:
        """True when the journey is dealt with this cycle (a change made, or a guardrail makes it wait)."""
        if outcome is None:
            self.bad[s.key] = 0  # give the change time to show: act again only after N more violating cycles
            if notes:  # what was found on the way and is not the loop's to fix: said, not lost
                self.hold(f"{s.key}: " + "; ".join(notes), measurements=_measures(m), **where)
            return True
        if isinstance(outcome, _Wait):
            self.hold(f"{s.key} out of target: {outcome.reason}", measurements=_measures(m), **where)
            return True
        notes.append(outcome.reason)
        return False

    # ----------------------------------------------------------------- remediations

    def mark(
        self, journey: Journey, device: Device, wrong: list[int], expected: int, s: SegmentStatus, m: dict[str, float]
    ) -> _Outcome:
        seen = ", ".join(dscp_name(d) for d in wrong)
        want = dscp_name(expected)
        key = ("marking", journey.name, device.name)
        if not has_arrival_dscp(journey) or key in self.mine or key in self.fixed_keys:
            return _Skip(
                f"DSCP {seen} seen on arrival where {want} is expected, but {device.name} marks the journey at the "
                "edge already: it is re-marked after the router (the path), which the loop cannot fix"
            )
        conflicts = marking_conflicts(self.policy, journey, device)
        if conflicts:
            return _Skip(
                f"DSCP {seen} seen on arrival where {want} is expected; marking it at the edge whatever it arrives "
                f"with would claim traffic of {', '.join(conflicts)}"
            )
        why = self.may_change([device.name])
        if why:
            return _Wait(why)
        reason = (
            f"{journey.name} arrives as {seen} instead of {want} (it matches only traffic already marked {want}): "
            f"mark it at the edge of {device.name} whatever DSCP it arrives with"
        )
        ms = _measures(m)
        action = Action(
            "mark",
            journey.name,
            device.name,
            reason,
            f"matches traffic arriving as {want}",
            f"marks {want} at the edge",
            measurements=ms,
        )
        self.commit([action], {key: self.entry(MarkingChange(journey.name, device.name), reason, ms)}, [device.name])
        return None

    def raise_guarantee(
        self, journey: Journey, device: Device, iface: Interface, cls: str, s: SegmentStatus, m: dict[str, float]
    ) -> _Outcome:
        key = ("bandwidth", journey.name, device.name)
        if key in self.fixed_keys:
            return _Skip(f"its guarantee on {device.name} is set by another Adjustments document")
        adjusted = self.adjusted()
        rate = self.rate(device, iface, adjusted)
        current = journey_kbps(journey, device.name, rate, adjusted)
        _, ceiling = bandwidth_range(journey, iface.bandwidth_kbps or rate)
        if current >= ceiling - 0.5:
            limit = (
                f"its loop.max_kbps {ceiling:g}"
                if journey.loop.max_kbps is not None
                else "its bandwidth (the journey gives no loop.max_kbps)"
            )
            return _Skip(f"its guarantee {current:g} kbps on {device.name} is at {limit}")
        want = _kbps(min(ceiling, max(current + 1, current * (1 + self.limits.max_step_pct / 100))))
        # the priority cap: squeezing other journeys never makes room in strict priority
        trial = self.with_entry(self.entry(BandwidthChange(journey.name, device.name, want), "", ()))
        loads = link_loads(self.policy, device, trial, self.reserved(device))
        over_strict = max((ld.strict_kbps - ld.strict_cap_kbps for ld in loads), default=0.0)
        if over_strict > 1e-6:
            want = _kbps(want - over_strict)
            if want <= current:
                return _Skip(f"the priority cap leaves no room to raise it on {device.name}")
            trial = self.with_entry(self.entry(BandwidthChange(journey.name, device.name, want), "", ()))
            loads = link_loads(self.policy, device, trial, self.reserved(device))
        needed = max((ld.guaranteed_kbps - ld.guaranteed_cap_kbps for ld in loads), default=0.0)
        squeezes: list[tuple[Journey, float, float]] = []
        if needed > 1e-6:
            rank = PRIORITY_RANK[journey.priority]
            others = [
                o
                for o in journeys_at(self.policy, device)
                if o.name != journey.name
                and PRIORITY_RANK[o.priority] > rank
                and ("bandwidth", o.name, device.name) not in self.fixed_keys
            ]
            others.sort(key=lambda o: (not _scavenger(o), -PRIORITY_RANK[o.priority], o.name))
            for o in others:
                have = journey_kbps(o, device.name, rate, adjusted)
                floor, _ = bandwidth_range(o, iface.bandwidth_kbps or rate)
                new = max(math.ceil(floor - 1e-9), _kbps(have - needed))
                if new >= have:
                    continue
                squeezes.append((o, have, float(new)))
                needed -= have - new
                if needed <= 1e-6:
                    break
            if needed > 1e-6:
                want = _kbps(want - needed)
                if want <= current:
                    return _Skip(
                        f"{device.name} {iface.name} has no room to guarantee it more, and the lower-priority "
                        "journeys there are at their floors (loop.min_kbps)"
                    )
        entries = [self.entry(BandwidthChange(journey.name, device.name, want), "", ())]
        entries += [self.entry(BandwidthChange(o.name, device.name, new), "", ()) for o, _, new in squeezes]
        broken = self.fits(device, self.with_entry(*entries))
        if broken:
            return _Skip(broken)
        why = self.may_change([device.name])
        if why:
            return _Wait(why)
        ms = _measures(m)
        reason = (
            f"{journey.name}@{s.segment} out of target with class {cls} congested on {device.name} {iface.name}: "
            f"raise its guarantee {current:g} -> {want:g} kbps (loop.max_kbps {ceiling:g})"
        )
        actions = [Action("raise_guarantee", journey.name, device.name, reason, current, want, iface.name, ms)]
        changes: dict[tuple[str, ...], Adjustment | None] = {
            key: self.entry(BandwidthChange(journey.name, device.name, want), reason, ms)
        }
        for o, have, new in squeezes:
            why_o = f"squeezed {have:g} -> {new:g} kbps on {device.name} to make room for {journey.name} ({o.priority})"
            actions.append(Action("squeeze", o.name, device.name, why_o, have, new, iface.name, ms))
            stated = o.bandwidth.kbps_on(iface.bandwidth_kbps or rate)
            k = ("bandwidth", o.name, device.name)
            changes[k] = (
                None if abs(new - stated) < 0.5 else self.entry(BandwidthChange(o.name, device.name, new), why_o, ms)
            )
        self.tightened(key)
        self.commit(actions, changes, [device.name])
        return None

    def strict(self, journey: Journey, s: SegmentStatus, m: dict[str, float]) -> _Outcome:
        target = strict_class(self.policy.classes)
        key = ("strict_priority", journey.name)
        adjusted = self.adjusted()
        if target is None or effective_class(journey, adjusted, self.policy.classes) == target:
            return _Skip("it is in the strict-priority class already" if target else "no class has strict priority")
        if not journey.loop.strict_priority or journey.priority not in ("critical", "high"):
            return _Skip("the journey does not let the loop move it to strict priority (spec.loop.strict_priority)")
        if key in self.fixed_keys:
            return _Skip("its strict-priority move is set by another Adjustments document")
        moved = self.with_entry(self.entry(StrictPriorityChange(journey.name), "", ()))
        devices = [d for d in self.policy.devices if in_scope(journey, d, self.policy.context_of(d))]
        for d in devices:
            broken = self.fits(d, moved)
            if broken:
                return _Skip(f"moving it to strict priority: {broken}")
        why = self.may_change(d.name for d in devices)
        if why:
            return _Wait(why)
        ms = _measures(m)
        cls = effective_class(journey, adjusted, self.policy.classes)
        reason = (
            f"{journey.name}@{s.segment} out of target, its class congested and its guarantee at its limit: move it "
            f"from {cls} to strict priority ({target}); the priority cap holds on every link it reaches"
        )
        action = Action("strict_priority", journey.name, None, reason, cls, target, measurements=ms)
        self.tightened(key)
        self.commit(
            [action], {key: self.entry(StrictPriorityChange(journey.name), reason, ms)}, (d.name for d in devices)
        )
        return None

    def shaper_floor(self, device: Device, iface: Interface, low: int, current: int) -> int:
        """The lowest rate in ``[low, current]`` at which the device's links keep every cap (current if none)."""
        if self.fits(device, self.with_shaper(device, iface, low)) is None:
            return low
        lo, hi = low, current  # invariant: lo breaks a cap, hi keeps them (or is the current rate)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.fits(device, self.with_shaper(device, iface, mid)) is None:
                hi = mid
            else:
                lo = mid
        return hi

    def lower(
        self, device: Device, iface: Interface, q: QueueState, journey: Journey | None, m: dict[str, float]
    ) -> _Outcome:
        """Remediation 5: the bottleneck is downstream; shape below the measured capacity."""
        name = f"{device.name}/{iface.name}"
        key = ("shaper", device.name, iface.name)
        streak = self.bloat.get(name, 0)
        if streak < self.limits.act_after:
            return _Wait(
                f"delay up while the router's queue on {device.name} {iface.name} is short for {streak} of the "
                f"{self.limits.act_after} cycles the loop waits for"
            )
        if key in self.fixed_keys:
            return _Skip(f"the shaper of {device.name} {iface.name} is set by another Adjustments document")
        current = self.rate(device, iface)
        assert iface.bandwidth_kbps is not None
        low, _ = iface.shaper_range or (iface.bandwidth_kbps, iface.bandwidth_kbps)
        floor = self.shaper_floor(device, iface, low, current) if low < current else current
        if current <= floor:
            limit = (
                f"its min_kbps {low}"
                if iface.min_kbps is not None
                else "its bandwidth_kbps (the inventory gives no min_kbps)"
            )
            if floor > low:
                limit = f"{floor} kbps, below which its guarantees would break a validation rule"
            return _Skip(f"the bottleneck is downstream, but the shaper of {device.name} {iface.name} is at {limit}")
        known = [x for x in (q.delivered_kbps, q.capacity_kbps) if x is not None and x > 0]
        capacity = min(known) if known else None
        step = current * (1 - self.limits.max_step_pct / 100)
        target = capacity * self.limits.headroom if capacity is not None else step
        new = max(floor, math.floor(max(target, step)))
        if new >= current * 0.99:
            return _Skip(
                f"the shaper of {device.name} {iface.name} ({current} kbps) is within 1 % of "
                f"{self.limits.headroom:g} x the measured capacity already"
            )
        why = self.may_change([device.name])
        if why:
            return _Wait(why)
        if capacity is not None:
            m["capacity_kbps"] = capacity
        m["bloat_cycles"] = float(streak)
        ms = _measures(m)
        cause = f" ({journey.name}'s one-way delay rose)" if journey else ""
        measured = f" of the measured {capacity:.0f} kbps" if capacity is not None else ""
        reason = (
            f"delay up while the router's queue on {device.name} {iface.name} stays short for {streak} cycles"
            f"{cause}: the bottleneck is downstream; shape {current} -> {new} kbps"
            f" ({self.limits.headroom:g}{measured}, at most {self.limits.max_step_pct:g} % a step, not below {floor})"
        )
        action = Action(
            "lower_shaper", journey.name if journey else None, device.name, reason, current, new, iface.name, ms
        )
        if self.direction.get(name) == "up":
            self.backoff[name] = min(self.limits.max_backoff, self.backoff.get(name, 0) + 1)
        self.direction[name] = "down"
        self.bloat[name] = 0
        self.calm.pop(name, None)
        self.commit([action], {key: self.entry(ShaperChange(device.name, iface.name, new), reason, ms)}, [device.name])
        return None

    def capacity(self) -> None:
        """Shapers: lower where the delay rose without a journey out of target; raise back where headroom returned."""
        for (dev_name, iface_name), q in sorted(self.queues.items()):
            device = self.devices.get(dev_name)
            iface = next((i for i in device.wan_interfaces if i.name == iface_name), None) if device else None
            if device is None or iface is None or not iface.bandwidth_kbps or dev_name in self.touched:
                continue
            if dev_name in self.drifted:
                continue
            name = f"{dev_name}/{iface_name}"
            figures = self.via(device, iface)
            worst = max(figures, key=lambda f: self.excess(f, device, iface) or -math.inf, default=None)
            m = dict(worst.measurements()) if worst else {}
            if q.delivered_kbps is not None:
                m["delivered_kbps"] = q.delivered_kbps
            m["shaper_kbps"] = float(self.rate(device, iface))
            if self.bloat.get(name, 0) >= self.limits.act_after:
                journey = self.policy.journey(worst.journey) if worst else None
                outcome = self.lower(device, iface, q, journey, m)
                if outcome is not None:
                    self.hold(outcome.reason, device=dev_name, measurements=_measures(m))
                continue
            self.raise_back(device, iface, q, m)

    def raise_back(self, device: Device, iface: Interface, q: QueueState, m: dict[str, float]) -> None:
        name = f"{device.name}/{iface.name}"
        key = ("shaper", device.name, iface.name)
        assert iface.bandwidth_kbps is not None
        nominal = iface.bandwidth_kbps
        _, high = iface.shaper_range or (nominal, nominal)
        current = self.rate(device, iface)
        loaded = q.delivered_kbps is not None and q.delivered_kbps >= self.limits.loaded * current
        if key in self.fixed_keys or not (current < nominal or (loaded and current < high)):
            return
        calm = self.calm.get(name, 0)
        needed = self.limits.relax_cycles(self.backoff.get(name, 0))
        if calm < needed:
            if key in self.mine and not self.bloat.get(name, 0):
                self.hold(
                    f"{device.name} {iface.name} shaped to {current} kbps: raised back after {needed} calm cycles "
                    f"({calm} so far)",
                    device=device.name,
                    measurements=_measures(m),
                )
            return
        step = nominal * self.limits.raise_step_pct / 100
        new = min(nominal, math.floor(current + step)) if current < nominal else min(high, math.floor(current + step))
        if new <= current:
            return
        why = self.may_change([device.name])
        if why:
            self.hold(f"raising the shaper of {device.name} {iface.name} back waits: {why}", device=device.name)
            return
        m["calm_cycles"] = float(calm)
        ms = _measures(m)
        headroom = "the delay is back at the path's base" + (
            " and the shaper is the bottleneck" if current >= nominal else ""
        )
        reason = (
            f"{headroom} on {device.name} {iface.name} for {calm} cycles: raise the shaper {current} -> {new} kbps "
            f"({self.limits.raise_step_pct:g} % of its {nominal} kbps a step"
            + (", back to its bandwidth_kbps)" if new == nominal else ")")
        )
        action = Action("raise_shaper", None, device.name, reason, current, new, iface.name, ms)
        if self.direction.get(name) == "up" and self.backoff.get(name):
            self.backoff[name] -= 1  # the last raise held: the headroom is real, wait less for the next
        self.direction[name] = "up"
        self.calm[name] = 0
        if new == nominal:
            self.backoff.pop(name, None)
        entry = None if new == nominal else self.entry(ShaperChange(device.name, iface.name, new), reason, ms)
        self.commit([action], {key: entry}, [device.name])

    # ----------------------------------------------------------------- relax

    def segments_of(self, journey: str, site: str | None = None) -> list[SegmentStatus]:
        return [s for s in self.obs.segments if s.journey == journey and (site is None or s.segment == site)]

    def all_good(self, segments: list[SegmentStatus], needed: int) -> int | None:
        """The smallest good streak of the segments when every one reached ``needed``; else None."""
        if not segments:
            return None
        streaks = [self.good.get(s.key, 0) for s in segments]
        return min(streaks) if min(streaks) >= needed else None

    def relax(self) -> None:
        """Relax the loop's own changes after enough good cycles: strict moves first, then raised guarantees."""
        order = {"strict_priority": 0, "bandwidth": 1}
        for key, a in sorted(self.mine.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0])):
            c = a.change
            if isinstance(c, StrictPriorityChange):
                self.relax_strict(key, c)
            elif isinstance(c, BandwidthChange):
                self.relax_bandwidth(key, c)

    def relax_strict(self, key: tuple[str, ...], c: StrictPriorityChange) -> None:
        journey = self.policy.journey(c.journey)
        if journey is None:
            return
        name = "/".join(key)
        needed = self.limits.relax_cycles(self.backoff.get(name, 0))
        good = self.all_good(self.segments_of(journey.name), needed)
        if good is None:
            return
        devices = [d.name for d in self.policy.devices if in_scope(journey, d, self.policy.context_of(d))]
        why = self.may_change(devices)
        if why:
            self.hold(f"moving {journey.name} back out of strict priority waits: {why}", journey=journey.name)
            return
        before = effective_class(journey, self.adjusted(), self.policy.classes)
        after = effective_class(journey, Adjusted(), self.policy.classes)
        reason = f"{journey.name} in target everywhere for {good} cycles: move it back from {before} to {after}"
        action = Action(
            "relax_strict_priority", journey.name, None, reason, before, after, measurements=(("good_cycles", good),)
        )
        self.relaxed[name] = self.cycle
        self.commit([action], {key: None}, devices)

    def relax_bandwidth(self, key: tuple[str, ...], c: BandwidthChange) -> None:
        journey = self.policy.journey(c.journey)
        device = self.devices.get(c.device)
        if journey is None or device is None or not device.wan_interfaces:
            return
        iface = device.wan_interfaces[0]
        stated = journey.bandwidth.kbps_on(iface.bandwidth_kbps or 0)
        name = "/".join(key)
        if c.kbps > stated:
            needed = self.limits.relax_cycles(self.backoff.get(name, 0))
            good = self.all_good(self.segments_of(journey.name, device.site), needed)
            if good is None:
                return
            new = max(stated, _kbps(c.kbps * (1 - self.limits.max_step_pct / 100)))
            kind: ActionKind = "relax_guarantee"
            reason = (
                f"{journey.name}@{device.site} in target for {good} cycles: step its guarantee on {device.name} "
                f"back {c.kbps:g} -> {new:g} kbps (its bandwidth: {stated:g})"
            )
            ms: tuple[tuple[str, float], ...] = (("good_cycles", float(good)),)
        else:
            if any(self.bad.get(s.key, 0) for s in self.segments_of(journey.name, device.site)):
                return
            loads = link_loads(self.policy, device, self.adjusted(), self.reserved(device))
            room = min((ld.guaranteed_cap_kbps - ld.guaranteed_kbps for ld in loads), default=0.0)
            gap = stated - c.kbps
            if room < min(gap, 0.01 * min(ld.rate_kbps for ld in loads)) or room < 1:
                return
            new = min(stated, _kbps(c.kbps + room))
            kind = "unsqueeze"
            reason = f"{device.name} has room again: give {journey.name} back its guarantee {c.kbps:g} -> {new:g} kbps"
            ms = (("room_kbps", round(room, 3)),)
        if new == c.kbps:
            return
        why = self.may_change([device.name])
        if why:
            self.hold(f"relaxing {journey.name}'s guarantee on {device.name} waits: {why}", journey=journey.name)
            return
        action = Action(kind, journey.name, device.name, reason, c.kbps, new, iface.name, ms)
        done = abs(new - stated) < 0.5
        entry = None if done else self.entry(BandwidthChange(journey.name, device.name, new), reason, ms)
        if kind == "relax_guarantee":
            self.relaxed[name] = self.cycle
        self.commit([action], {key: entry}, [device.name])

    # ----------------------------------------------------------------- validation and the result

    def validate(self) -> Build:
        """Compile the policy with the new entries; drop the latest changes until it validates."""
        while True:
            if _entries(self.mine.values()) == _entries(self.previous):
                return self.build
            candidate = dataclasses.replace(self.policy, adjustments=(*self.fixed, *self.mine.values()))
            result = compile_policy(candidate)
            if result.ok:
                return result
            first = result.errors[0].message
            entry_undo = next(i for i in range(len(self.undo) - 1, -1, -1) if self.undo[i].entries)
            while len(self.undo) > entry_undo:
                for a in self.rollback():
                    self.hold(
                        f"{a.kind} dropped: the policy with it would not validate ({first})",
                        journey=a.journey,
                        device=a.device,
                        measurements=a.measurements,
                    )

    def decision(self, result: Build) -> Decision:
        changed = {p.device for p in result.plans} if result is not self.build else set()
        if changed:
            before = {p.device: p for p in self.build.plans}
            changed = {p.device for p in result.plans if before.get(p.device) != p}
        devices = tuple(sorted(changed | {a.device for a in self.actions if a.kind == "reapply" and a.device}))
        state = LoopState(
            cycle=self.cycle,
            bad=self.bad,
            good=self.good,
            bloat=self.bloat,
            calm=self.calm,
            last_change=self.last_change,
            backoff=self.backoff,
            relaxed=self.relaxed,
            direction=self.direction,
            path_good=self.path_good,
            path_moved=self.path_moved,
        )
        return Decision(
            cycle=self.cycle,
            time=self.now,
            verdicts={s.key: s.verdict for s in self.obs.segments},
            actions=tuple(self.actions),
            holds=tuple(self.holds),
            adjustments=tuple(self.mine.values()),
            previous=self.previous,
            devices=devices,
            state=state,
            build=result,
        )


def touched_by(action: Action, policy: Policy) -> frozenset[tuple[str, str, str]]:
    """The journey x segment keys (journey, site, context) one change touches: the journey at the device's site for
    a journey's change (every site it reaches for strict priority), every journey at the site for a shaper or a
    reapply. The keys of :mod:`controller.evaluate.baseline`, for the before and after of the loop's report."""
    journey = policy.journey(action.journey) if action.journey else None
    if action.device is not None:
        devices = [d for d in policy.devices if d.name == action.device]
    elif journey is not None:
        devices = [d for d in policy.devices if in_scope(journey, d, policy.context_of(d))]
    else:
        devices = []
    whole_site = action.kind in ("lower_shaper", "raise_shaper", "reapply") or journey is None
    out: set[tuple[str, str, str]] = set()
    for d in devices:
        names = [j.name for j in journeys_at(policy, d)] if whole_site else [action.journey or ""]
        out |= {(name, d.site, policy.context_of(d)) for name in names}
    return frozenset(out)


def touched(decision: Decision) -> frozenset[tuple[str, str, str]]:
    """Every journey x segment key the decision's changes touch (:func:`touched_by` of each action)."""
    policy = decision.build.policy
    return frozenset(k for a in decision.actions for k in touched_by(a, policy))
