"""Path steering in the loop's decision (controller/adjust/paths.py), the ``path`` adjustment it writes, and the
plan that entry compiles to, on synthetic observations (no lab): when a journey moves, where to, when it moves
back, that it never flaps and never goes where its policy excludes it.

The edge is br1-edge (Cisco SD-WAN) at branch-1 with mpls (GigabitEthernet1) and public-internet
(GigabitEthernet2). Home transports as the compiler picks them: voice (critical) and crm-web (high) the lower
delay, mpls; bulk (low) the cheaper, public-internet; pinned (high) may only use mpls
(``preferred_transports: [mpls]``, ``strict: true``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.adjust import (
    Decision,
    JourneyFigures,
    Limits,
    LoopState,
    Observation,
    SegmentStatus,
    decide,
    propose,
)
from controller.adjust.document import document_text
from controller.adjust.health import TransportHealth, sla_verdict
from controller.model import PathChange
from controller.pipeline import Build, build
from controller.plan import SlaClass
from tests.policy_builder import (
    PolicyRepo,
    bulk_journey,
    device,
    document,
    interactive_journey,
    lan,
    transport,
    voice_journey,
    wan,
)

EDGE = "br1-edge"
INET = "public-internet"  # a Cisco SD-WAN colour
T0 = 1_746_093_600.0
BAD = (400.0, 5.0, 3.0)  # delay ms, jitter ms, loss %: misses every SLA class
GOOD = (20.0, 1.0, 0.0)
LIMITS = Limits(act_after=1, min_interval_s=0, path_hold=3)


def repo(*entries: dict[str, object]) -> PolicyRepo:
    r = PolicyRepo.standard(journeys=False)
    r.docs("inventory/sites.yaml")[0]["spec"]["transports"].append(transport(INET, 35, 5, 0.1, cost=5))
    r.set_devices(
        [
            device(
                EDGE,
                "cisco_sdwan",
                "branch-1",
                interfaces=[
                    wan("GigabitEthernet1", 20000, "mpls"),
                    wan("GigabitEthernet2", 20000, INET),
                    lan("GigabitEthernet3"),
                ],
            ),
            device("hq-rtr1", "linux", "hq"),
            device("hq-ios", "cisco_iosxe", "hq"),
        ]
    )
    r.add_journey(voice_journey("voice"))
    r.add_journey(interactive_journey("crm-web", priority="high"))
    r.add_journey(bulk_journey("bulk"))
    r.add_journey(
        interactive_journey(
            "pinned", port=8443, priority="high", sdwan={"preferred_transports": ["mpls"], "strict": True}
        )
    )
    if entries:
        r.add("adjustments/loop.yaml", document("Adjustments", "qoectl-loop", {"entries": list(entries)}))
    return r


def compiled(tmp_path: Path, *entries: dict[str, object]) -> Build:
    result = build(repo(*entries).write(tmp_path / "repo"))
    assert result.ok, [d.format() for d in result.errors]
    return result


def path_entry(journey: str, transport: str, device_name: str = EDGE) -> dict[str, object]:
    return {
        "path": {"journey": journey, "device": device_name, "transport": transport},
        "reason": "test",
        "measurements": {},
        "time": "2025-05-01T10:00:00Z",
    }


def first(result: Build, journey: str) -> str:
    plan = result.plan(EDGE)
    assert plan is not None
    return next(p for p in plan.path_preferences if p.journey == journey).preferred[0]


def obs(
    cycle: int, verdicts: Mapping[str, str], mpls: tuple[float, float, float], internet: tuple[float, float, float]
) -> Observation:
    segments = tuple(SegmentStatus(j, "branch-1", v) for j, v in sorted(verdicts.items()))  # type: ignore[arg-type]
    health = tuple(TransportHealth(EDGE, t, *m) for t, m in (("mpls", mpls), (INET, internet)))
    figures = tuple(JourneyFigures(j, "branch-1", one_way_delay_p50_ms=mpls[0]) for j in verdicts)
    return Observation(T0 + 10 * cycle, segments, figures, transports=health)


def paths_of(d: Decision) -> list[tuple[str, str | None, object, object]]:
    return [(a.kind, a.journey, a.before, a.after) for a in d.actions if a.kind in ("move_path", "path_back")]


# --------------------------------------------------------------------------- the entry: compile and validate


def test_a_path_entry_puts_its_transport_first_and_keeps_the_rest_as_backup(tmp_path: Path) -> None:
    home = compiled(tmp_path / "a")
    assert first(home, "voice") == "mpls" and first(home, "bulk") == INET
    moved = compiled(tmp_path / "b", path_entry("voice", INET))
    plan = moved.plan(EDGE)
    assert plan is not None
    voice = next(p for p in plan.path_preferences if p.journey == "voice")
    assert voice.preferred == (INET,) and voice.backup == ("mpls",)
    before = next(p for p in home.plan(EDGE).path_preferences if p.journey == "voice")  # type: ignore[union-attr]
    assert voice.strict == before.strict and voice.sla_class == before.sla_class
    others = [p for p in plan.path_preferences if p.journey != "voice"]
    assert others == [p for p in home.plan(EDGE).path_preferences if p.journey != "voice"]  # type: ignore[union-attr]
    assert moved.policy.adjustments[0].change == PathChange("voice", EDGE, INET)


def test_a_path_entry_is_refused_at_its_line_outside_what_the_journey_and_device_allow(tmp_path: Path) -> None:
    r = repo(
        path_entry("pinned", INET),  # strict preferred_transports [mpls]
        path_entry("voice", "satellite"),  # not a transport of the edge
        path_entry("voice", "mpls", "hq-ios"),  # IOS-XE selects no path per journey
    )
    result = build(r.write(tmp_path / "repo"))
    errors = {(d.location.line, d.field): d.message for d in result.errors}
    text = r.text("adjustments/loop.yaml")
    lines = text.splitlines()
    pinned = next(i for i, x in enumerate(lines, 1) if "journey: pinned" in x)
    satellite = next(i for i, x in enumerate(lines, 1) if "transport: satellite" in x)
    assert any(line == pinned + 2 and "strict: true" in msg for (line, _), msg in errors.items()), errors
    assert any(line == satellite and "unknown transport" in msg for (line, _), msg in errors.items()), errors
    assert any("does not select a path per journey" in msg for msg in errors.values()), errors
    assert len(result.errors) == 3, [d.format() for d in result.errors]
    assert all(d.location.file.endswith("loop.yaml") for d in result.errors)


def test_the_loop_document_writes_a_path_entry_back_as_it_reads_it(tmp_path: Path) -> None:
    result = compiled(tmp_path, path_entry("voice", INET))
    text = document_text(result.policy.adjustments)
    assert "path:\n      journey: voice\n      device: br1-edge\n      transport: public-internet\n" in text


def test_sla_verdict_compares_every_budget_of_the_class() -> None:
    sla = SlaClass("voice", "VOICE", 150.0, 9.9, 0.26, 4.0, ("voice",))
    assert sla_verdict(sla, TransportHealth("r", "mpls", 20, 1, 0))[0] == "pass"
    verdict, why = sla_verdict(sla, TransportHealth("r", "mpls", 20, 12, 0.5))
    assert verdict == "fail" and len(why) == 2
    assert sla_verdict(sla, TransportHealth("r", "mpls", error="no route"))[0] == "unknown"
    assert sla_verdict(sla, None)[0] == "unknown"


# --------------------------------------------------------------------------- the decision


def run(result: Build, steps: Iterable[Observation], limits: Limits = LIMITS) -> list[Decision]:
    state = LoopState()
    out = []
    for o in steps:
        d = decide(result, o, state, limits)
        out.append(d)
        result, state = d.build, d.state
    return out


FAIL_ALL = {"voice": "fail", "crm-web": "fail", "bulk": "fail", "pinned": "fail"}
PASS_ALL = {"voice": "pass", "crm-web": "pass", "bulk": "pass", "pinned": "pass"}


def test_only_journeys_whose_transport_misses_their_sla_move_and_never_where_excluded(tmp_path: Path) -> None:
    result = compiled(tmp_path)
    d = run(result, [obs(1, FAIL_ALL, BAD, GOOD)])[0]
    assert sorted(paths_of(d)) == [
        ("move_path", "crm-web", "mpls", INET),
        ("move_path", "voice", "mpls", INET),
    ]
    assert first(d.build, "voice") == INET and first(d.build, "crm-web") == INET
    assert first(d.build, "pinned") == "mpls"  # strict to mpls: never moved
    assert any("pinned@branch-1" in h.reason and f"{INET} excluded by its policy" in h.reason for h in d.holds)
    assert first(d.build, "bulk") == INET  # no SLA class: never steered
    assert d.devices == (EDGE,) and d.changed
    voice = next(a for a in d.actions if a.journey == "voice")
    assert dict(voice.measurements)["mpls_delay_ms"] == 400.0 and dict(voice.measurements)[f"{INET}_delay_ms"] == 20.0


def test_a_journey_out_of_target_on_a_transport_that_meets_its_sla_is_not_moved(tmp_path: Path) -> None:
    d = run(compiled(tmp_path), [obs(1, FAIL_ALL, GOOD, GOOD)])[0]
    assert paths_of(d) == []
    d = run(compiled(tmp_path / "b"), [obs(1, PASS_ALL, BAD, GOOD)])[0]  # in target: the transport may be poor
    assert paths_of(d) == []


def test_a_proposed_move_is_a_patch_whose_message_says_why(tmp_path: Path) -> None:
    work = tmp_path / "work"
    repo().write(work)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "policy"]):
        subprocess.run(["git", *args], cwd=work, check=True, env={**os.environ, **env})
    d = run(build(work), [obs(1, FAIL_ALL, BAD, GOOD)])[0]
    patch = propose(work, d, tmp_path / "proposals")
    assert patch is not None
    text = patch.read_text(encoding="utf-8")
    assert "Subject: [PATCH] qoectl loop: steer the path of voice on br1-edge: mpls -> public-internet" in text
    assert "+      transport: public-internet" in text and "mpls_delay_ms=400" in text
    assert not (work / "adjustments").exists()


def test_no_transport_meets_the_sla_no_move_and_the_hold_says_why(tmp_path: Path) -> None:
    d = run(compiled(tmp_path), [obs(1, FAIL_ALL, BAD, BAD)])[0]
    assert paths_of(d) == []
    assert any("voice@branch-1" in h.reason and "no other transport it may use meets it" in h.reason for h in d.holds)


def test_moves_back_once_after_the_hold_time_and_then_stays(tmp_path: Path) -> None:
    steps = [obs(1, FAIL_ALL, BAD, GOOD)] + [obs(i, PASS_ALL, GOOD, GOOD) for i in range(2, 16)]
    decisions = run(compiled(tmp_path), steps)
    changes = [(i + 1, c) for i, d in enumerate(decisions) for c in paths_of(d)]
    voice = [(n, c) for n, c in changes if c[1] == "voice"]
    # moved at cycle 1; mpls good from cycle 2: 3 good cycles (2, 3, 4) -> back at cycle 4, once
    assert voice == [(1, ("move_path", "voice", "mpls", INET)), (4, ("path_back", "voice", INET, "mpls"))]
    assert first(decisions[-1].build, "voice") == "mpls"
    assert not any(isinstance(a.change, PathChange) for a in decisions[-1].build.policy.adjustments)
    waiting = [h.reason for h in decisions[1].holds if h.journey == "voice"]
    assert waiting and "back to mpls once mpls has met SLA class voice for 3 cycles (1 so far)" in waiting[0]


def test_a_journey_moved_is_not_moved_again_within_the_hold_time(tmp_path: Path) -> None:
    # cycle 1 mpls bad -> internet; cycle 2 internet bad and mpls good: it would go back, but not within 3 cycles
    steps = [
        obs(1, FAIL_ALL, BAD, GOOD),
        obs(2, FAIL_ALL, GOOD, BAD),
        obs(3, FAIL_ALL, GOOD, BAD),
        obs(4, FAIL_ALL, GOOD, BAD),
    ]
    decisions = run(compiled(tmp_path), steps)
    voice = [(i + 1, c) for i, d in enumerate(decisions) for c in paths_of(d) if c[1] == "voice"]
    assert voice == [(1, ("move_path", "voice", "mpls", INET)), (4, ("path_back", "voice", INET, "mpls"))]
    assert any("no flapping" in h.reason for h in decisions[1].holds if h.journey == "voice")


HEALTH = st.sampled_from([GOOD, BAD])
CYCLE = st.tuples(st.sampled_from(["pass", "fail"]), HEALTH, HEALTH)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(CYCLE, min_size=4, max_size=14))
def test_property_no_flap_never_excluded_one_decision_per_journey(
    tmp_path: Path, cycles: list[tuple[str, tuple[float, float, float], tuple[float, float, float]]]
) -> None:
    steps = [obs(i + 1, dict.fromkeys(FAIL_ALL, v), m, n) for i, (v, m, n) in enumerate(cycles)]
    decisions = run(compiled(tmp_path / f"p{len(cycles)}-{abs(hash(str(cycles)))}"), steps)
    last: dict[str, int] = {}
    for i, d in enumerate(decisions, 1):
        moved = [c[1] for c in paths_of(d)]
        assert len(moved) == len(set(moved))  # one decision per journey per cycle
        for _kind, journey, _before, after in paths_of(d):
            assert journey in ("voice", "crm-web")  # bulk has no SLA class, pinned has nowhere else to go
            assert after in ("mpls", INET)
            assert i - last.get(str(journey), -99) >= LIMITS.path_hold, (journey, i, last)
            last[str(journey)] = i
        assert first(d.build, "pinned") == "mpls"
