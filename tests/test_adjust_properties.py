"""Properties of the loop's decisions under noisy inputs (hypothesis): hysteresis, no flapping, the guardrails.

Each example runs the decision core over a random sequence of cycles (verdicts, congested classes, one-way
delay, delivered rate) on tests/loop_support.py's policy, feeding each decision's build to the next cycle, and
checks what must hold whatever the sequence:

* a journey's remediation only after N consecutive violating cycles (and N more after its last one);
* a shaper lowered only after N consecutive cycles of bloat, raised only after M calm ones;
* a relax step only after M consecutive good cycles;
* never more than ``max_changes`` changes in a cycle, never two changes to a device within ``min_interval_s``;
* every cycle's Adjustments validate with the policy (priority cap, what a link can guarantee);
* inputs that alternate good and bad every cycle change nothing, ever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.adjust import Limits, LoopState, decide
from controller.adjust.engine import Decision
from controller.pipeline import Build
from tests.loop_support import STEP_S, built, delay, hq_queue, link, loop_repo, observe

TIGHTEN = {"mark", "raise_guarantee", "strict_priority"}
RELAX = {"relax_guarantee", "relax_strict_priority"}
BASE_DELAY = 20.0

Cycle = tuple[str, str, bool, bool, float, float]  # voice, crm-web, voice class congested, crm congested, delay, rate
cycles = st.tuples(
    st.sampled_from(["fail", "pass", "unknown"]),
    st.sampled_from(["fail", "pass", "unknown"]),
    st.booleans(),
    st.booleans(),
    st.sampled_from([21.0, 30.0, 80.0]),
    st.sampled_from([9000.0, 15000.0, 19000.0]),
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return built(loop_repo(), tmp_path_factory.mktemp("loop") / "repo")


def run(base: Build, script: list[Cycle], limits: Limits) -> list[Decision]:
    b, state, out = base, LoopState(), []
    for n, (voice, crm, voice_congested, crm_congested, p50, rate) in enumerate(script, start=1):
        classes = {"telephony": (0, 20 if voice_congested else 0), "low-latency-data": (0, 20 if crm_congested else 0)}
        short = not (voice_congested or crm_congested)
        queue = hq_queue(backlog_bytes=0 if short else 50_000, delivered_kbps=rate, classes=classes)
        obs = observe(
            n,
            {"voice@hq": voice, "crm-web@hq": crm},
            figures=[delay("voice", p50), delay("crm-web", p50)],
            queues=[queue],
        )
        d = decide(b, obs, state, limits)
        assert d.build.ok, [x.format() for x in d.build.errors]
        out.append(d)
        b, state = d.build, d.state
    return out


def streak_before(flags: list[bool], c: int) -> int:
    """How many cycles up to and including ``c`` the flag held, without a break."""
    n = 0
    while c - n >= 0 and flags[c - n]:
        n += 1
    return n


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    script=st.lists(cycles, min_size=1, max_size=30),
    n=st.integers(min_value=1, max_value=4),
    m=st.integers(min_value=1, max_value=4),
    interval=st.sampled_from([0.0, 20.0, 50.0]),
    max_changes=st.integers(min_value=1, max_value=3),
)
def test_guardrails_hold_whatever_the_inputs(
    base: Build, script: list[Cycle], n: int, m: int, interval: float, max_changes: int
) -> None:
    limits = Limits(act_after=n, relax_after=m, min_interval_s=interval, max_changes=max_changes)
    decisions = run(base, script, limits)
    verdict = {"voice": [c[0] for c in script], "crm-web": [c[1] for c in script]}
    # both journeys are delayed alike: the bottleneck is downstream when either class is short at the router
    bloat = [c[4] - BASE_DELAY > limits.bloat_ms and not (c[2] and c[3]) for c in script]
    calm = [c[4] - BASE_DELAY < limits.calm_ms for c in script]
    last_tighten: dict[str, int] = {}
    last_change: dict[str, float] = {}
    for c, d in enumerate(decisions):
        groups = [a for a in d.actions if a.kind != "squeeze"]  # a squeeze is part of the raise it makes room for
        assert len(groups) <= max_changes
        devices = [a.device for a in groups if a.device] + [
            dev for a in groups if a.device is None for dev in ("br1-rtr1", "hq-rtr1")
        ]
        assert len(devices) == len(set(devices)), "two changes to one device in one cycle"
        for dev in devices:
            if dev in last_change:
                assert d.time - last_change[dev] >= interval
            last_change[dev] = d.time
        for a in d.actions:
            if a.kind in TIGHTEN:
                assert a.journey is not None
                fails = [v == "fail" for v in verdict[a.journey]]
                assert streak_before(fails, c) >= n
                if a.journey in last_tighten:
                    assert c - last_tighten[a.journey] >= n
                last_tighten[a.journey] = c
            elif a.kind in RELAX:
                assert a.journey is not None
                goods = [v == "pass" for v in verdict[a.journey]]
                assert streak_before(goods, c) >= m
            elif a.kind == "lower_shaper":
                assert streak_before(bloat, c) >= n
            elif a.kind == "raise_shaper":
                assert streak_before(calm, c) >= m
        rate = link(d.build).link_kbps
        assert 8000 <= rate <= 20000


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    phase=st.booleans(),
    length=st.integers(min_value=2, max_value=40),
    n=st.integers(min_value=2, max_value=4),
    m=st.integers(min_value=2, max_value=4),
    congested=st.booleans(),
)
def test_inputs_alternating_every_cycle_never_change_anything(
    base: Build, phase: bool, length: int, n: int, m: int, congested: bool
) -> None:
    """Good, bad, good, bad ...: every violating streak is 1 long, every good one too: nothing to act on."""
    script: list[Cycle] = []
    for i in range(length):
        bad = (i % 2 == 0) == phase
        script.append(
            (
                "fail" if bad else "pass",
                "pass" if bad else "fail",
                congested and bad,
                congested and not bad,
                80.0 if bad else 21.0,  # bloat and calm alternate too
                9000.0,
            )
        )
    decisions = run(base, script, Limits(act_after=n, relax_after=m, min_interval_s=0))
    assert all(d.actions == () for d in decisions)
    assert all(not d.changed and d.devices == () for d in decisions)


def test_the_state_carries_the_streaks_between_invocations(base: Build, tmp_path: Path) -> None:
    """Three separate invocations (the state saved and read back between them) act like one run of three cycles."""
    from controller.adjust import load_state, save_state

    path = tmp_path / ".qoectl-loop" / "state.json"
    limits = Limits(act_after=3, min_interval_s=0)
    b = base
    kinds = []
    for cycle in range(1, 4):
        obs = observe(
            cycle, {"voice@hq": "fail"}, queues=[hq_queue(classes={"telephony": (0, 9)})], figures=[delay("voice", 22)]
        )
        d = decide(b, obs, load_state(path), limits)
        save_state(path, d.state)
        b = d.build
        kinds.append([a.kind for a in d.actions])
    assert kinds == [[], [], ["raise_guarantee"]]
    saved = load_state(path)
    assert saved.cycle == 3 and saved.last_change["hq-rtr1"] == pytest.approx(obs.time)
    assert STEP_S == 15.0
