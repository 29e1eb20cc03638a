"""What the loop writes: its Adjustments document, a proposal (a Git patch for review), its audit lines and state."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from controller.adjust import (
    LOOP_DOCUMENT,
    Limits,
    LoopState,
    StateError,
    decide,
    document_text,
    load_state,
    loop_file,
    propose,
    record,
    save_state,
    write_adjustments,
)
from controller.adjust.engine import Decision
from controller.apply.audit import RunFolder
from controller.load.loader import load_policy
from controller.model import Adjustment, BandwidthChange, MarkingChange, ShaperChange, StrictPriorityChange
from controller.pipeline import build
from tests.loop_support import built, delay, hq_queue, loop_repo, observe

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/bin:/bin",
}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=GIT_ENV, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def lowered(root: Path) -> Decision:
    """Three cycles of bloat on hq-rtr1 wan0: the third lowers its shaper."""
    b = build(root)
    state = LoopState()
    for cycle in range(1, 4):
        obs = observe(
            cycle, {"voice@hq": "fail"}, figures=[delay("voice", 80)], queues=[hq_queue(delivered_kbps=12000)]
        )
        d = decide(b, obs, state, Limits(min_interval_s=0))
        state, b = d.state, d.build
    assert [a.kind for a in d.actions] == ["lower_shaper"]
    return d


# --------------------------------------------------------------------------- the document


def test_the_document_reads_back_as_written(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    built(loop_repo(crm={"max_kbps": 3000, "strict_priority": True}), root)
    odd = "delay 80 ms: 'quoted', \"double\", # not a comment, ünïcode — and a colon: here"
    entries = [
        Adjustment(
            ShaperChange("hq-rtr1", "wan0", 15000), odd, (("one_way_delay_p50_ms", 80.0),), "2025-05-01T10:00:00Z"
        ),
        Adjustment(
            BandwidthChange("voice", "hq-rtr1", 1125.5), "raise", (("class_drops", 30.0),), "2025-05-01T10:00:15Z"
        ),
        Adjustment(StrictPriorityChange("crm-web"), "strict", (), "2025-05-01T10:00:30Z"),
    ]
    path = write_adjustments(root, entries)
    assert path == loop_file(root) == root / "adjustments" / "loop.yaml"
    policy, problems = load_policy(root)
    assert not [p for p in problems if p.severity == "error"]
    read = [(a.change, a.reason, a.measurements, a.time, a.document) for a in policy.adjustments]
    assert read == [(a.change, a.reason, a.measurements, a.time, LOOP_DOCUMENT) for a in entries]
    result = build(root)
    assert result.ok, [d.format() for d in result.errors]
    stamp = path.stat().st_mtime_ns
    write_adjustments(root, entries)  # the same text: not rewritten
    assert path.stat().st_mtime_ns == stamp


def test_the_document_is_written_into_a_policy_folder_only(tmp_path: Path) -> None:
    single = tmp_path / "policy.yaml"
    single.write_text("apiVersion: qoectl/v1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="policy folder"):
        write_adjustments(single, [])


# --------------------------------------------------------------------------- proposals


def test_a_proposal_is_a_patch_that_git_applies_and_that_validates(tmp_path: Path) -> None:
    work = tmp_path / "work"
    root = work / "policies"  # the policy folder is a subfolder of the repository
    built(loop_repo(), root)
    git(work, "init", "-q")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "policy")
    d = lowered(root)
    patch = propose(root, d, tmp_path / "proposals")
    assert patch is not None and patch.name == "0001-qoectl-loop-cycle-3.patch"
    assert not loop_file(root).exists()  # proposing writes nothing into the repository
    text = patch.read_text(encoding="utf-8")
    assert "+++ b/policies/adjustments/loop.yaml" in text
    # the reviewer's copy: git apply takes the diff, git am the whole commit with its message
    review = tmp_path / "review"
    shutil.copytree(work, review)
    git(review, "apply", "--check", str(patch))
    git(review, "am", "-q", str(patch))
    message = git(review, "log", "-1", "--format=%B")
    assert message.startswith("qoectl loop: lower the shaper of hq-rtr1 wan0: 20000 -> 15000")
    assert "the bottleneck is downstream" in message
    assert "capacity_kbps=12000" in message and "one_way_delay_p50_ms=80" in message
    applied = review / "policies"
    assert loop_file(applied).read_text(encoding="utf-8") == document_text(d.adjustments)
    result = build(applied)
    assert result.ok, [x.format() for x in result.errors]
    assert [a.change for a in result.policy.adjustments] == [ShaperChange("hq-rtr1", "wan0", 15000)]
    # the next proposal changes the file the first one added, and applies on top of it
    git(work, "am", "-q", str(patch))
    d2 = decide(
        build(root),
        observe(9, {"voice@hq": "pass"}, queues=[hq_queue()]),
        LoopState(),
        Limits(min_interval_s=0),
    )
    d2 = Decision(**{**d2.__dict__, "adjustments": (*d2.adjustments, _marking())})
    second = propose(root, d2, tmp_path / "proposals")
    assert second is not None and second.name.startswith("0002-")
    git(work, "apply", "--check", str(second))


def _marking() -> Adjustment:
    return Adjustment(MarkingChange("voice", "hq-rtr1"), "hand-made", (), "2025-05-01T11:00:00Z", LOOP_DOCUMENT)


def test_nothing_to_propose_when_the_document_does_not_change(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    b = built(loop_repo(), root)
    d = decide(b, observe(1, {"voice@hq": "pass"}), LoopState(), Limits())
    write_adjustments(root, d.adjustments)
    assert propose(root, d, tmp_path / "out") is None


# --------------------------------------------------------------------------- audit


def test_every_decision_is_in_the_audit_log_with_its_reason_and_measurements(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    built(loop_repo(), root)
    d = lowered(root)
    gap = "network within budget, users unhappy: look beyond QoS: application, device, usability"
    quiet = decide(
        d.build,
        observe(4, {"crm-web@hq": "pass"}, gaps={"crm-web@hq": gap}),
        d.state,
        Limits(),
    )
    folder = RunFolder(tmp_path / "run", "run-1")
    record(folder, d, applied=True)
    record(folder, quiet, applied=False)
    record(folder, decide(d.build, observe(5, {}), quiet.state, Limits()))
    folder.close()
    lines = [json.loads(x) for x in (tmp_path / "run" / "audit.jsonl").read_text().splitlines()]
    events = [(x["event"], x.get("cycle")) for x in lines]
    assert events == [
        ("loop_cycle", 3),
        ("loop_action", 3),
        ("loop_cycle", 4),
        ("loop_no_action", 4),
        ("loop_cycle", 5),
        ("loop_no_action", 5),
    ]
    action = lines[1]
    assert action["kind"] == "lower_shaper" and action["device"] == "hq-rtr1"
    assert (action["before"], action["after"]) == (20000, 15000)
    assert "bottleneck is downstream" in action["reason"]
    assert action["measurements"]["delay_excess_ms"] == 60
    assert lines[0]["applied"] is True and lines[0]["changed"] is True
    assert "perception gap" in lines[3]["reason"] and lines[3]["journey"] == "crm-web"
    assert "nothing to change" in lines[5]["reason"]


# --------------------------------------------------------------------------- state


def test_the_state_is_never_written_into_the_policy_repository(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    built(loop_repo(), root)
    with pytest.raises(StateError, match="does not belong in the policy repository"):
        save_state(root / ".qoectl-loop" / "state.json", LoopState(), root)
    path = save_state(tmp_path / ".qoectl-loop" / "state.json", LoopState(cycle=4, bad={"voice@hq": 2}), root)
    assert load_state(path) == LoopState(cycle=4, bad={"voice@hq": 2})
    assert load_state(tmp_path / "none.json") == LoopState()
    path.write_text('{"format": "something else"}', encoding="utf-8")
    with pytest.raises(StateError, match="not a qoectl loop state"):
        load_state(path)


# --------------------------------------------------------------------------- the loop's report


def test_the_report_gives_each_change_the_before_and_after_of_the_journeys_it_touched(tmp_path: Path) -> None:
    from controller.adjust import before_after
    from controller.evaluate.baseline import Baseline, Distribution

    root = tmp_path / "repo"
    built(loop_repo(), root)
    d = lowered(root)

    def summary(voice_delay: float, crm_ms: float) -> Baseline:
        return Baseline(
            0,
            1,
            {
                ("voice", "hq", "campus"): {"one_way_delay_ms": Distribution.of([voice_delay] * 10)},
                ("crm-web", "hq", "campus"): {"response_time_ms": Distribution.of([crm_ms] * 10)},
                ("voice", "branch-1", "branch"): {"one_way_delay_ms": Distribution.of([30.0] * 10)},  # not touched
            },
        )

    (report,) = before_after(d.actions, d.build.policy, summary(80.0, 300.0), summary(24.0, 310.0))
    assert report.action.kind == "lower_shaper"
    # the shaper of hq-rtr1 touches every journey at hq; those measured then or now are compared
    got = {(s.key[0], s.key[1]): s.change for s in report.segments}
    assert got == {("voice", "hq"): "better", ("crm-web", "hq"): "same"}
    voice = next(s for s in report.segments if s.key[0] == "voice")
    assert (voice.metrics[0].before.p50, voice.metrics[0].after.p50) == (80.0, 24.0)  # type: ignore[union-attr]
