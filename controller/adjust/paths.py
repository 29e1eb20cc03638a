"""Path steering: move a journey to another transport when its own transport misses its SLA class.

On an SD-WAN edge (a device whose plan has SLA classes and path preferences) each journey with an SLA
class leaves by the first transport of its path preference. Per cycle, per such journey and device, with
the transports' health as the edge measures it (:class:`~controller.adjust.health.TransportHealth`):

* **move**: the journey is out of target at the device's site for ``act_after`` cycles, its current
  transport misses its SLA class, and another transport it may use meets it (its home transport first,
  then in the order of its path preference): a ``path`` entry steers it there. Transports a journey may
  not use (``sdwan.preferred_transports`` with ``strict: true``) are never chosen;
* **back**: a journey away from its home transport (the first of its preference without the loop's path
  entries) goes back once the home transport has met its SLA class for ``path_hold`` consecutive cycles:
  the entry is removed;
* **no flap**: a journey whose path changed on a device less than ``path_hold`` cycles ago is not moved
  there again, whatever the measurements say.

Moves on one device in one cycle are one change (one apply) under the loop's guardrails (``max_changes``,
``min_interval_s``). A journey out of target while its transport meets its SLA class is not moved: the
transport is not the cause (the other remediations look at it). Journeys without an SLA class (no delay,
jitter or loss budget: bulk) are never moved.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controller.adjust.engine import Action, ActionKind, _measures
from controller.adjust.health import SlaVerdict, TransportHealth, sla_verdict
from controller.model import PRIORITY_RANK, Adjustment, Device, PathChange
from controller.pipeline import Build, compile_policy
from controller.plan import DevicePlan, PathPreference
from controller.validate.adjustments import allowed_transports

if TYPE_CHECKING:
    from controller.adjust.engine import _Cycle


@dataclass(frozen=True, slots=True)
class _Move:
    journey: str
    segment: str
    before: str
    after: str
    back: bool  # to the home transport
    reason: str
    measurements: tuple[tuple[str, float], ...]


def _home_build(c: _Cycle) -> Build:
    """The policy compiled without the loop's own path entries: each journey's home transport."""
    if not any(isinstance(a.change, PathChange) for a in c.mine.values()):
        return c.build
    kept = tuple(a for a in c.mine.values() if not isinstance(a.change, PathChange))
    return compile_policy(dataclasses.replace(c.policy, adjustments=(*c.fixed, *kept)))


def steer_paths(c: _Cycle) -> None:
    """The path pass of one cycle (see the module doc): moves, moves back, and holds with their reasons."""
    health = {(h.device, h.transport): h for h in c.obs.transports}
    if not health:
        return
    home = _home_build(c)
    for plan in c.build.plans:
        device = c.devices.get(plan.device)
        home_plan = home.plan(plan.device)
        if device is None or home_plan is None or not plan.path_preferences:
            continue
        if not any(d == device.name for d, _ in health):
            continue
        moves = _device(c, device, plan, home_plan, health)
        if moves:
            _commit(c, device, moves)


def _device(
    c: _Cycle,
    device: Device,
    plan: DevicePlan,
    home_plan: DevicePlan,
    health: dict[tuple[str, str], TransportHealth],
) -> list[_Move]:
    slas = {s.name: s for s in plan.sla_classes}
    homes = {p.journey: p for p in home_plan.path_preferences}
    hold = c.limits.path_hold

    def rank(p: PathPreference) -> tuple[int, str]:
        return (PRIORITY_RANK.get(p.priority, 9), p.journey)

    moves: list[_Move] = []
    for pref in sorted(plan.path_preferences, key=rank):
        journey = c.policy.journey(pref.journey)
        home_pref = homes.get(pref.journey)
        if pref.sla_class is None or journey is None or home_pref is None or not pref.preferred:
            continue
        sla = slas[pref.sla_class]
        current, home = pref.preferred[0], (home_pref.preferred or pref.preferred)[0]
        order = (*pref.preferred, *pref.backup)
        verdicts = {t: sla_verdict(sla, health.get((device.name, t))) for t in order}
        key = f"{journey.name}@{device.name}"
        seg = f"{journey.name}@{device.site}"
        if current != home and verdicts.get(home, ("unknown", ()))[0] == "pass":
            c.path_good[key] = c.state.path_good.get(key, 0) + 1
        else:
            c.path_good.pop(key, None)
        moved = c.path_moved.get(key)
        since = c.cycle - moved if moved is not None else None
        status = c.status.get(seg)
        m = _figures(c, seg, order, health, device.name)
        where = {"journey": journey.name, "segment": device.site, "device": device.name}
        if status is not None and status.verdict == "fail" and verdicts[current][0] == "fail":
            n = c.bad.get(seg, 0)
            if n < c.limits.act_after:
                continue  # the violations pass says it waits
            allowed = allowed_transports(journey, device)
            good = [t for t in order if t != current and t in allowed and verdicts[t][0] == "pass"]
            good.sort(key=lambda t: t != home)  # home first when it meets the SLA again
            c.steered.add(seg)
            misses = "; ".join(verdicts[current][1])
            if not good:
                excluded = [t for t in order if t not in allowed]
                c.hold(
                    f"{seg} out of target and {current} misses SLA class {sla.name} on {device.name} ({misses}); "
                    f"no other transport it may use meets it ({_said(verdicts, order, current)})"
                    + (f"; {', '.join(excluded)} excluded by its policy" if excluded else ""),
                    measurements=_measures(m),
                    **where,
                )
                continue
            if since is not None and since < hold:
                c.hold(
                    f"{seg} out of target on {current} ({misses}), but its path on {device.name} changed {since} "
                    f"cycle(s) ago: it stays at least {hold} cycles (no flapping)",
                    measurements=_measures(m),
                    **where,
                )
                continue
            if ("path", journey.name, device.name) in c.fixed_keys:
                c.hold(f"{seg}: its path on {device.name} is set by another Adjustments document", **where)
                continue
            target = good[0]
            reason = (
                f"{seg} out of target for {n} cycle(s) and {current} misses SLA class {sla.name} on {device.name} "
                f"({misses}); {target} meets it: move {journey.name} {current} -> {target}"
            )
            moves.append(_Move(journey.name, seg, current, target, target == home, reason, _measures(m)))
            continue
        if current == home:
            continue
        good_cycles = c.path_good.get(key, 0)
        if status is not None and status.verdict == "fail":
            continue  # out of target on a transport that meets its SLA class: not the path (other rules look)
        waiting = good_cycles < hold or (since is not None and since < hold)
        if waiting or home not in allowed_transports(journey, device):
            c.hold(
                f"{journey.name} steered to {current} on {device.name}: back to {home} once {home} has met SLA class "
                f"{sla.name} for {hold} cycles ({good_cycles} so far)",
                measurements=_measures(m),
                **where,
            )
            continue
        reason = (
            f"{home} has met SLA class {sla.name} on {device.name} for {good_cycles} cycles: move {journey.name} "
            f"back {current} -> {home}"
        )
        m["home_good_cycles"] = float(good_cycles)
        moves.append(_Move(journey.name, seg, current, home, True, reason, _measures(m)))
    return moves


def _said(verdicts: dict[str, tuple[SlaVerdict, tuple[str, ...]]], order: tuple[str, ...], current: str) -> str:
    return ", ".join(
        f"{t} {verdicts[t][0]}" + (f": {'; '.join(verdicts[t][1])}" if verdicts[t][1] else "")
        for t in order
        if t != current
    )


def _figures(
    c: _Cycle, seg: str, order: tuple[str, ...], health: dict[tuple[str, str], TransportHealth], device: str
) -> dict[str, float]:
    """The journey's own figures and each transport's health (``<transport>_delay_ms`` ...)."""
    f = c.figures.get(seg)
    out = dict(f.measurements()) if f is not None else {}
    for t in order:
        h = health.get((device, t))
        if h is not None:
            out.update(h.measurements(f"{t}_"))
    return out


def _commit(c: _Cycle, device: Device, moves: list[_Move]) -> None:
    why = c.may_change([device.name])
    if why:
        for mv in moves:
            c.hold(
                f"{mv.segment}: moving {mv.journey} {mv.before} -> {mv.after} waits: {why}",
                journey=mv.journey,
                device=device.name,
                measurements=mv.measurements,
            )
        return
    actions = []
    entries: dict[tuple[str, ...], Adjustment | None] = {}
    saved = (dict(c.path_moved), dict(c.path_good), dict(c.bad), set(c.steered))

    def restore() -> None:  # the moves dropped (the policy with them would not validate): as if never made
        c.path_moved, c.path_good, c.bad, c.steered = (dict(saved[0]), dict(saved[1]), dict(saved[2]), set(saved[3]))

    for mv in moves:
        kind: ActionKind = "path_back" if mv.back else "move_path"
        actions.append(Action(kind, mv.journey, device.name, mv.reason, mv.before, mv.after, None, mv.measurements))
        key = ("path", mv.journey, device.name)
        change = PathChange(mv.journey, device.name, mv.after)
        entries[key] = None if mv.back else c.entry(change, mv.reason, mv.measurements)
        name = f"{mv.journey}@{device.name}"
        c.path_moved[name] = c.cycle
        c.path_good.pop(name, None)
        c.bad[mv.segment] = 0
        c.steered.add(mv.segment)
    c.commit(actions, entries, [device.name], restore)
