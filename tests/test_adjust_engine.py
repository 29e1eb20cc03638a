"""The loop's decisions (``controller.adjust.decide``): each remediation in its situation and order, within the
policy's limits, and the guardrails. Results are checked where they land: the compiled plans of the decision's
build (guarantees, classes, matches, shaper rates) and the policy validated with the new Adjustments.

The policy and the figures are tests/loop_support.py's: hq-rtr1 wan0 is 20 Mbit/s, base delay 20 ms (mpls).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from controller.adjust import DeviceDrift, Limits, LoopState, decide, touched, write_adjustments
from controller.adjust.engine import Decision
from controller.pipeline import Build, build
from tests.loop_support import built, delay, guarantee, hq_queue, link, loop_repo, observe
from tests.policy_builder import voice_journey

FAST = Limits(act_after=1, relax_after=2, min_interval_s=0)


def kinds(decision: Decision) -> list[str]:
    return [a.kind for a in decision.actions]


def on_disk(decision: Decision, root: Path) -> Build:
    """The decision's Adjustments written into the repository and the repository built again: it validates."""
    write_adjustments(root, decision.adjustments)
    result = build(root)
    assert result.ok, [d.format() for d in result.errors]
    return result


# --------------------------------------------------------------------------- 1. drift


def test_a_drifted_device_is_applied_again_first_and_nothing_else_changes_on_it(tmp_path: Path) -> None:
    b = built(loop_repo(), tmp_path / "repo")
    obs = observe(
        1,
        {"voice@hq": "fail"},
        figures=[delay("voice", 25)],
        queues=[hq_queue(classes={"telephony": (4000, 12)})],
        drift=[DeviceDrift("hq-rtr1", True, "+3 -1 lines"), DeviceDrift("br1-rtr1", False)],
    )
    d = decide(b, obs, LoopState(), FAST)
    assert kinds(d) == ["reapply"]
    assert (d.actions[0].device, d.actions[0].before, d.actions[0].after) == ("hq-rtr1", "drifted", "compiled policy")
    assert d.devices == ("hq-rtr1",)
    assert not d.changed  # the policy is what it was: the device gets it again
    assert any("drifted" in h.reason and h.journey == "voice" for h in d.holds)


# --------------------------------------------------------------------------- 2. marking


def marked_repo() -> object:
    repo = loop_repo()
    ports = {"protocol": "udp", "destination_ports": [5004]}
    repo.add_journey(voice_journey("marked", traffic={"match": [{**ports, "dscp": "ef"}]}, flows=2))
    return repo


def test_traffic_arriving_unmarked_is_marked_at_the_edge_before_anything_else(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    b = built(marked_repo(), root)  # type: ignore[arg-type]
    # unmarked on arrival, and its class congested too: marking is the least disruptive remedy, so it comes first
    obs = observe(
        1,
        {"marked@hq": "fail"},
        figures=[delay("marked", 25, dscp_seen=(0,))],
        queues=[hq_queue(classes={"telephony": (4000, 12)})],
    )
    d = decide(b, obs, LoopState(), FAST)
    assert kinds(d) == ["mark"]
    assert d.devices == ("hq-rtr1",)
    after = on_disk(d, root)

    def arrival(device: str) -> list[int | None]:
        plan = after.plan(device)
        assert plan is not None
        return [m.dscp for r in plan.markings if r.journey == "marked" for m in r.matches]

    assert arrival("hq-rtr1") == [None]  # marked whatever it arrives with
    assert arrival("br1-rtr1") == [46]  # elsewhere: unchanged


def test_a_journey_re_marked_after_a_router_that_marks_it_is_not_the_loops_to_fix(tmp_path: Path) -> None:
    b = built(loop_repo(), tmp_path / "repo")
    obs = observe(1, {"voice@hq": "fail"}, figures=[delay("voice", 22, dscp_seen=(0,))], queues=[hq_queue()])
    d = decide(b, obs, LoopState(), FAST)
    assert d.actions == ()
    (hold,) = [h for h in d.holds if h.journey == "voice"]
    assert "re-marked after the router" in hold.reason
    assert dict(hold.measurements)["dscp_seen"] == 0 and dict(hold.measurements)["dscp_expected"] == 46


# --------------------------------------------------------------------------- 3. guarantee, 4. strict priority


def test_a_congested_class_gets_its_guarantee_raised_step_by_step_up_to_the_journeys_maximum(tmp_path: Path) -> None:
    b = built(loop_repo(), tmp_path / "repo")
    state = LoopState()
    seen = [guarantee(b, "telephony")]
    for cycle in range(1, 8):
        obs = observe(cycle, {"voice@hq": "fail"}, queues=[hq_queue(classes={"telephony": (0, 30)})])
        d = decide(b, obs, state, FAST)
        state, b = d.state, d.build
        assert b.ok
        seen.append(guarantee(b, "telephony"))
    # +25 % a step (max_step_pct), capped at loop.max_kbps 2400; the strict class is policed at its guarantee
    assert seen == [900, 1125, 1406, 1757, 2196, 2400, 2400, 2400]
    assert link(b).allocation("telephony").police_kbps == 2400
    assert guarantee(b, "telephony", "br1-rtr1", "GigabitEthernet0/0/0") == 900  # only where it was congested
    last = d.holds[-1]
    assert "no remediation is left" in last.reason and "loop.max_kbps 2400" in last.reason


def test_room_is_made_by_squeezing_scavenger_first_and_never_below_a_floor(tmp_path: Path) -> None:
    repo = loop_repo()
    # a low-priority backup at 58 % of the link without loop.min_kbps (not squeezable): 18,500 of the 18,600 kbps
    # the link can guarantee (93 %: 5 % for class-default, 2 % for network control) are taken
    from tests.policy_builder import bulk_journey

    repo.add_journey(bulk_journey("backup", port=8600, bandwidth={"share_pct": 58}))
    root = tmp_path / "repo"
    b = built(repo, root)
    obs = observe(1, {"crm-web@hq": "fail"}, queues=[hq_queue(classes={"low-latency-data": (0, 9)})])
    d = decide(b, obs, LoopState(), FAST)
    assert kinds(d) == ["raise_guarantee", "squeeze"]
    raised, squeezed = d.actions
    assert (raised.journey, raised.before, raised.after) == ("crm-web", 1000, 1250)
    assert (squeezed.journey, squeezed.before, squeezed.after) == ("scav", 1000, 850)  # scavenger first
    after = on_disk(d, root)
    assert guarantee(after, "low-latency-data") == 1250
    assert guarantee(after, "low-priority-data") == 850
    assert guarantee(after, "high-throughput-data") == 4000 + 11600  # bulk and backup untouched


def test_with_its_guarantee_at_its_limit_a_journey_moves_to_strict_priority_when_it_allows(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    b = built(loop_repo(crm={"max_kbps": 1000, "strict_priority": True}), root)
    obs = observe(1, {"crm-web@hq": "fail"}, queues=[hq_queue(classes={"low-latency-data": (20000, 3)})])
    d = decide(b, obs, LoopState(), Limits(act_after=1, min_interval_s=60))
    assert kinds(d) == ["strict_priority"]
    assert (d.actions[0].before, d.actions[0].after) == ("low-latency-data", "telephony")
    assert set(d.devices) == {"hq-rtr1", "br1-rtr1"}  # a class is end to end: every device it reaches
    after = on_disk(d, root)
    for plan in after.plans:
        rule = next(r for r in plan.markings if r.journey == "crm-web")
        assert rule.class_name == "telephony" and rule.dscp_name == "ef"
        assert plan.wan_interfaces[0].allocation("telephony").police_kbps == 900 + 1000  # type: ignore[union-attr]


def test_strict_priority_is_not_used_when_the_priority_cap_would_break(tmp_path: Path) -> None:
    b = built(loop_repo(crm={"max_kbps": 1000, "strict_priority": True}, settings={"priority_cap_pct": 8}), tmp_path)
    obs = observe(1, {"crm-web@hq": "fail"}, queues=[hq_queue(classes={"low-latency-data": (20000, 3)})])
    d = decide(b, obs, LoopState(), FAST)
    assert d.actions == ()
    (hold,) = d.holds
    assert "priority cap" in hold.reason and "1900 of 20000 kbps" in hold.reason


# --------------------------------------------------------------------------- 5. capacity


def test_delay_rising_with_the_routers_queue_short_lowers_the_shaper_towards_the_measured_capacity(
    tmp_path: Path,
) -> None:
    b = built(loop_repo(), tmp_path / "repo")
    state = LoopState()
    limits = Limits(act_after=3, min_interval_s=0)
    decisions = []
    for cycle in range(1, 4):
        obs = observe(
            cycle, {"voice@hq": "fail"}, figures=[delay("voice", 80)], queues=[hq_queue(delivered_kbps=12000)]
        )
        d = decide(b, obs, state, limits)
        decisions.append(d)
        state, b = d.state, d.build
    assert [kinds(x) for x in decisions] == [[], [], ["lower_shaper"]]
    lowered = decisions[-1].actions[0]
    # 0.95 x the 12,000 kbps delivered would be 11,400, but a step is at most 25 %: 20,000 -> 15,000
    assert (lowered.before, lowered.after, lowered.interface) == (20000, 15000, "wan0")
    assert (link(b).link_kbps, link(b).shape_kbps) == (15000, 15000)
    m = dict(lowered.measurements)
    assert m["delay_excess_ms"] == 60 and m["capacity_kbps"] == 12000 and m["bloat_cycles"] == 3


def test_drops_in_another_class_do_not_hide_a_downstream_bottleneck(tmp_path: Path) -> None:
    """The shaper dropping bulk beyond its share is the shaper at work; voice's own queue is empty: downstream."""
    b = built(loop_repo(), tmp_path)
    voice_cls = "telephony"
    busy = hq_queue(
        delivered_kbps=12000, backlog_bytes=400_000, classes={voice_cls: (0, 0), "bulk-data": (400_000, 900)}
    )
    obs = observe(1, {"voice@hq": "fail"}, figures=[delay("voice", 80)], queues=[busy])
    d = decide(b, obs, LoopState(), FAST)
    assert kinds(d) == ["lower_shaper"]
    # voice's own class drops: the queue is the router's, not downstream
    own = hq_queue(delivered_kbps=12000, classes={voice_cls: (0, 5), "bulk-data": (400_000, 900)})
    d = decide(b, observe(1, {"voice@hq": "fail"}, figures=[delay("voice", 80)], queues=[own]), LoopState(), FAST)
    assert "lower_shaper" not in kinds(d)


def test_without_min_kbps_the_inventory_does_not_let_the_loop_lower_the_shaper(tmp_path: Path) -> None:
    b = built(loop_repo(min_kbps=None), tmp_path)
    obs = observe(1, {"voice@hq": "fail"}, figures=[delay("voice", 80)], queues=[hq_queue(delivered_kbps=12000)])
    d = decide(b, obs, LoopState(), FAST)
    assert d.actions == ()
    assert any("no min_kbps" in h.reason for h in d.holds)


def test_the_shaper_never_goes_where_the_links_guarantees_would_break_a_rule(tmp_path: Path) -> None:
    """min_kbps allows 1 Mbit/s, but 7,300 kbps of guarantees (93 % of the link at most) need 7,850 kbps."""
    b = built(loop_repo(min_kbps=1000), tmp_path)
    state = LoopState()
    rates = []
    for cycle in range(1, 12):
        obs = observe(cycle, {"voice@hq": "fail"}, figures=[delay("voice", 80)], queues=[hq_queue(delivered_kbps=2000)])
        d = decide(b, obs, state, FAST)
        state, b = d.state, d.build
        assert b.ok
        rates.append(link(b).link_kbps)
    # voice 900 + bulk 4000 are absolute; crm-web and scav are 5 % each: 4900 <= 0.83 r  ->  r >= 5904
    assert min(rates) == 5904
    assert rates == sorted(rates, reverse=True)
    assert "its guarantees would break a validation rule" in d.holds[-1].reason


def simulate(capacity: list[float], limits: Limits, root: Path) -> tuple[list[int], list[Decision]]:
    """hq-rtr1 wan0 under a saturating load with a downstream capacity per cycle.

    Shaper above the capacity: the queue builds downstream (delay +40 ms, the router's queue empty, the link
    delivers the capacity). At or below it: the router's queue holds 10 ms at the shaper rate, the delay stays
    2 ms over the base. Voice fails when its delay is 25 ms or more over the base.
    """
    b = built(loop_repo(), root)
    state = LoopState()
    rates, decisions = [], []
    for cycle, cap in enumerate(capacity, start=1):
        rate = link(b).link_kbps
        rates.append(rate)
        downstream = rate > cap
        excess = 40.0 if downstream else 2.0
        queue = hq_queue(
            backlog_bytes=0 if downstream else int(rate * 10 / 8),
            delivered_kbps=min(rate, cap),
        )
        obs = observe(
            cycle,
            {"voice@hq": "fail" if excess >= 25 else "pass"},
            figures=[delay("voice", 20 + excess)],
            queues=[queue],
        )
        d = decide(b, obs, state, limits)
        assert d.build.ok
        decisions.append(d)
        state, b = d.state, d.build
    return rates, decisions


def test_capacity_converges_to_the_measured_capacity_raises_back_slowly_and_does_not_flap(tmp_path: Path) -> None:
    limits = Limits(act_after=2, relax_after=3, min_interval_s=0)
    low = [12000.0] * 150
    rates, decisions = simulate(low + [30000.0] * 150, limits, tmp_path)
    # down within a few cycles (2 cycles of bloat each): 20000 -> 15000 (25 % at most) -> 11400 (0.95 x 12000)
    assert rates[:5] == [20000, 20000, 15000, 15000, 11400]
    # probing up by 1000 kbps (5 % of the nominal rate) costs a few cycles above the capacity each time, and
    # each failed probe doubles the wait before the next (backoff): the probes thin out
    over = [c for c, r in enumerate(rates[:150]) if r > 12000]
    lowers = [c for c, d in enumerate(decisions[:150]) if "lower_shaper" in kinds(d)]
    gaps = [b - a for a, b in itertools.pairwise(lowers)]
    assert gaps == sorted(gaps) and gaps[-1] >= 4 * gaps[1]
    assert len(over) / 150 < 0.15
    assert all(8000 <= r <= 20000 for r in rates)
    # capacity back: raised in steps of at most 1000 kbps, at least relax_after calm cycles apart, to 20000
    raises = [(c, d.actions[0]) for c, d in enumerate(decisions) if c >= 150 and "raise_shaper" in kinds(d)]
    assert raises, "never raised back"
    for (c1, _), (c2, _) in itertools.pairwise(raises):
        assert c2 - c1 >= limits.relax_after
    assert all(0 < float(a.after) - float(a.before) <= 1000 for _, a in raises)  # type: ignore[arg-type]
    assert rates[-1] == 20000 and decisions[-1].adjustments == ()  # back to bandwidth_kbps: the entry is gone
    reversals = sum(
        1
        for a, b in itertools.pairwise(decisions)
        for x in a.actions
        for y in b.actions
        if {x.kind, y.kind} == {"lower_shaper", "raise_shaper"}
    )
    assert reversals == 0  # never a raise right after a lower or the other way round


# --------------------------------------------------------------------------- hysteresis and relaxing


def test_acts_only_after_n_violating_cycles_and_relaxes_only_after_m_good_ones(tmp_path: Path) -> None:
    b = built(loop_repo(), tmp_path)
    limits = Limits(act_after=3, relax_after=4, min_interval_s=0)
    congested = [hq_queue(classes={"telephony": (0, 30)})]
    script = ["fail", "fail", "pass", "fail", "fail", "fail"] + ["pass"] * 9
    state, log = LoopState(), []
    for cycle, verdict in enumerate(script, start=1):
        obs = observe(cycle, {"voice@hq": verdict}, queues=congested if verdict == "fail" else [hq_queue()])
        d = decide(b, obs, state, limits)
        state, b = d.state, d.build
        log.append((cycle, kinds(d), guarantee(b, "telephony")))
    acted = [(c, k) for c, k, _ in log if k]
    # raised after the 3rd consecutive violating cycle (the pass at cycle 3 restarted the count); relaxed after
    # the 4th good cycle: 1125 -> 900 kbps, its bandwidth, so the entry is gone
    assert acted == [(6, ["raise_guarantee"]), (10, ["relax_guarantee"])]
    assert [g for *_, g in log] == [900] * 5 + [1125] * 4 + [900] * 6
    assert b.policy.adjustments == ()


def test_a_change_needed_again_soon_after_relaxing_waits_twice_as_long_to_relax_next_time(tmp_path: Path) -> None:
    b = built(loop_repo(), tmp_path)
    limits = Limits(act_after=1, relax_after=2, min_interval_s=0)
    congested = [hq_queue(classes={"telephony": (0, 30)})]
    script = ["fail", "pass", "pass", "fail", "pass", "pass", "pass", "pass"]
    state, acted = LoopState(), []
    for cycle, verdict in enumerate(script, start=1):
        obs = observe(cycle, {"voice@hq": verdict}, queues=congested if verdict == "fail" else [hq_queue()])
        d = decide(b, obs, state, limits)
        state, b = d.state, d.build
        acted += [(cycle, k) for k in kinds(d)]
    # raised at 1, relaxed after 2 good cycles (3); needed again at 4; relaxed after 4 good cycles (8), not 2
    assert acted == [(1, "raise_guarantee"), (3, "relax_guarantee"), (4, "raise_guarantee"), (8, "relax_guarantee")]


# --------------------------------------------------------------------------- guardrails


def test_at_most_max_changes_a_cycle_and_min_interval_between_changes_to_one_device(tmp_path: Path) -> None:
    b = built(loop_repo(), tmp_path)
    limits = Limits(act_after=1, min_interval_s=40, max_changes=1)
    queues = [
        hq_queue(classes={"telephony": (0, 30), "low-latency-data": (0, 30)}),
    ]
    state, log = LoopState(), []
    for cycle in range(1, 6):  # 15 s apart
        obs = observe(cycle, {"voice@hq": "fail", "crm-web@hq": "fail"}, queues=queues)
        d = decide(b, obs, state, limits)
        state, b = d.state, d.build
        log.append(kinds(d))
    # one change a cycle at most, and hq-rtr1 is changed again only 45 s (3 cycles) later
    assert log == [["raise_guarantee"], [], [], ["raise_guarantee"], []]
    waits = [h.reason for h in d.holds if "s between changes" in h.reason]
    assert waits and "changed 15 s ago; at least 40 s" in waits[0]


def test_every_decision_validates_with_the_policy_it_changes(tmp_path: Path) -> None:
    """A long run of mixed trouble; after each cycle the Adjustments are written and the repository built again."""
    root = tmp_path / "repo"
    b = built(loop_repo(), root)
    state = LoopState()
    for cycle in range(1, 25):
        obs = observe(
            cycle,
            {"voice@hq": "fail", "crm-web@hq": "fail", "bulk@hq": "fail" if cycle % 3 else "pass"},
            figures=[delay("voice", 70), delay("crm-web", 70)],
            queues=[hq_queue(delivered_kbps=9000, classes={"telephony": (0, 5), "low-latency-data": (9000, 5)})],
        )
        d = decide(b, obs, state, FAST)
        state = d.state
        b = on_disk(d, root)
        assert b.plans == d.build.plans
        rate = link(b).link_kbps
        loads = [a.guaranteed_kbps for a in link(b).allocations if a.class_name != "standard"]
        assert sum(loads) <= 0.95 * rate + len(loads)  # class-default keeps its 5 % (up to rounding)
        strict = sum(a.guaranteed_kbps for a in link(b).allocations if a.police_kbps)
        assert strict <= 0.33 * rate + 1


# --------------------------------------------------------------------------- perception gap


def test_a_perception_gap_changes_nothing_and_says_why(tmp_path: Path) -> None:
    b = built(loop_repo(), tmp_path)
    gap = "network within budget, users unhappy: look beyond QoS: application, device, usability"
    state = LoopState()
    for cycle in range(1, 6):
        obs = observe(
            cycle,
            {"voice@hq": "pass", "crm-web@hq": "pass"},
            figures=[delay("voice", 80)],  # the figures would even suggest trouble
            queues=[hq_queue(delivered_kbps=12000, classes={"telephony": (0, 30)})],
            gaps={"voice@hq": gap, "crm-web@hq": gap},
        )
        d = decide(b, obs, state, FAST)
        state = d.state
        assert d.actions == () or kinds(d) == ["lower_shaper"]
        assert not [a for a in d.actions if a.journey in ("voice", "crm-web") and a.kind != "lower_shaper"]
    held = [h for h in d.holds if h.journey in ("voice", "crm-web")]
    assert {h.journey for h in held} == {"voice", "crm-web"}
    assert all("perception gap" in h.reason and "changes nothing" in h.reason for h in held)


def test_a_perception_gap_alone_changes_nothing_at_all(tmp_path: Path) -> None:
    b = built(loop_repo(), tmp_path)
    gap = "network within budget, users unhappy: look beyond QoS: application, device, usability"
    state = LoopState()
    for cycle in range(1, 6):
        obs = observe(
            cycle,
            {"voice@hq": "pass"},
            figures=[delay("voice", 21)],
            queues=[hq_queue(classes={"telephony": (0, 0)})],
            gaps={"voice@hq": gap},
        )
        d = decide(b, obs, state, FAST)
        state = d.state
        assert d.actions == () and not d.changed and d.devices == ()
        assert [h.reason for h in d.holds] == [
            f"perception gap at voice@hq: the network is within its targets, the users' feedback says otherwise "
            f"({gap}); the loop changes nothing for it"
        ]


# --------------------------------------------------------------------------- what the loop's report touches


def test_touched_names_the_journeys_a_change_affects(tmp_path: Path) -> None:
    b = built(loop_repo(), tmp_path)
    obs = observe(1, {"voice@hq": "fail"}, queues=[hq_queue(classes={"telephony": (0, 30)})])
    d = decide(b, obs, LoopState(), FAST)
    assert touched(d) == {("voice", "hq", "campus")}
    state = LoopState()
    for cycle in range(1, 4):
        obs = observe(cycle, {"voice@hq": "fail"}, figures=[delay("voice", 80)], queues=[hq_queue()])
        d = decide(b, obs, state, Limits(min_interval_s=0))
        state = d.state
    assert kinds(d) == ["lower_shaper"]
    assert touched(d) == {(j, "hq", "campus") for j in ("voice", "crm-web", "bulk", "scav")}


@pytest.mark.parametrize("bad", [{"act_after": 0}, {"headroom": 1.5}, {"calm_ms": 20, "bloat_ms": 10}])
def test_limits_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limits(**bad)  # type: ignore[arg-type]


def test_the_loop_does_not_decide_on_a_policy_that_does_not_validate(tmp_path: Path) -> None:
    from controller.adjust import DecisionError
    from tests.policy_builder import document

    repo = loop_repo()
    entry = {
        "bandwidth": {"journey": "voice", "device": "hq-rtr1", "kbps": 5000},
        "reason": "x",
        "time": "2025-05-01T10:00:00Z",
    }
    repo.add("adjustments/loop.yaml", document("Adjustments", "qoectl-loop", {"entries": [entry]}))
    b = build(repo.write(tmp_path / "repo"))
    assert not b.ok
    with pytest.raises(DecisionError, match=r"loop\.max_kbps 2400"):
        decide(b, observe(1, {"voice@hq": "fail"}), LoopState(), FAST)
