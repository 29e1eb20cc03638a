"""``qoectl loop`` on the configured sources (measurement files, Prometheus, feedback): no root, no lab, no device.

With ``--propose DIR`` a cycle reads the files, evaluates, decides and writes the proposal patch, never applying:
what a scheduled CI job runs. Each call is one cycle (the state folder carries the streaks), or ``--cycles N``
re-reads the files. The lab path's errors that need no root are here too.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from controller.cli.main import cli
from controller.pipeline import build
from tests.loop_support import loop_repo
from tests.policy_builder import PolicyRepo, voice_journey

T0 = 1_746_093_600.0  # 2025-05-01T10:00:00Z
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/bin:/bin",
}
JSON_KEYS = {
    "cycle",
    "time",
    "verdicts",
    "actions",
    "applied",
    "holds",
    "devices",
    "duration_s",
    "figures",
    "sources",
}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=GIT_ENV, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def marked_repo() -> PolicyRepo:
    """loop_repo plus ``marked``: voice that matches only traffic already marked EF (a ``dscp`` match)."""
    repo = loop_repo()
    ports = {"protocol": "udp", "destination_ports": [5004]}
    repo.add_journey(voice_journey("marked", traffic={"match": [{**ports, "dscp": "ef"}]}, flows=2))
    return repo


def policy_in_git(tmp: Path) -> tuple[Path, Path]:
    """The policy folder ``policies`` inside a Git work tree; returns (work tree, policy folder)."""
    work = tmp / "work"
    root = work / "policies"
    marked_repo().write(root)
    git(work, "init", "-q")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "policy")
    return work, root


def measurements(path: Path, *, delay_ms: float, loss_pct: float, dscp: int, n: int = 30) -> Path:
    """Voice samples of ``marked`` at hq: one-way delay, jitter, loss and the DSCP seen on arrival."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "journey", "site", "metric", "value"])
        for i in range(n):
            t = T0 + i * 10
            w.writerow([t, "marked", "hq", "one_way_delay_ms", delay_ms])
            w.writerow([t, "marked", "hq", "jitter_ms", 1.0])
            w.writerow([t, "marked", "hq", "loss_pct", loss_pct])
            w.writerow([t, "marked", "hq", "dscp", dscp])
    return path


def bad_voice(tmp: Path) -> Path:
    return measurements(tmp / "voice.csv", delay_ms=300.0, loss_pct=6.0, dscp=0)


def run_loop(root: Path, tmp: Path, *more: str, code: int = 0) -> Result:
    args = ["loop", str(root), "--interval-s", "0", "--run-dir", str(tmp / "runs"), "--state", str(tmp / "state")]
    result = CliRunner().invoke(cli, [*args, *more])
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# --------------------------------------------------------------------------- proposals from files (the CI job)


def test_voice_out_of_target_for_n_cycles_gives_a_proposal_that_git_applies_and_validates(tmp_path: Path) -> None:
    work, root = policy_in_git(tmp_path)
    data = bad_voice(tmp_path)
    proposals = tmp_path / "proposals"
    opts = ("--measurements", str(data), "--propose", str(proposals), "--json", "--act-after", "3")
    seen = []
    for n in range(1, 4):  # each call is one cycle; the state folder carries the streak
        (d,) = lines(run_loop(root, tmp_path, *opts))
        seen.append(d)
        assert set(d) >= JSON_KEYS, d.keys()
        assert d["verdicts"]["marked@hq"] == "fail"
        assert d["sources"] == [str(data)]
        assert d["applied"] is False
        if n < 3:
            assert d["actions"] == [] and not proposals.exists()
            (hold,) = [h for h in d["holds"] if h["journey"] == "marked"]
            assert f"out of target for {n} of the 3 cycles" in hold["reason"]
    last = seen[-1]
    assert [a["kind"] for a in last["actions"]] == ["mark"]
    assert last["actions"][0]["device"] == "hq-rtr1"
    assert last["figures"]["marked@hq"]["one_way_delay_p50_ms"] == 300.0
    assert [c["cycle"] for c in seen] == [1, 2, 3]
    (patch,) = sorted(proposals.glob("*.patch"))
    assert patch.name == "0001-qoectl-loop-cycle-3.patch"
    assert not (root / "adjustments").exists()  # proposing writes nothing into the repository
    assert git(work, "status", "--porcelain") == ""
    review = tmp_path / "review"
    shutil.copytree(work, review)
    git(review, "apply", "--check", str(patch))
    git(review, "apply", str(patch))
    result = build(review / "policies")
    assert result.ok, [x.format() for x in result.errors]
    marking = [a for a in result.policy.adjustments if a.document == "qoectl-loop"]
    assert len(marking) == 1 and "marked" in marking[0].reason
    # the validate command agrees
    assert CliRunner().invoke(cli, ["validate", str(review / "policies")]).exit_code == 0


def test_cycles_re_read_the_file_and_the_text_line_says_where_it_measures_and_that_it_proposes(
    tmp_path: Path,
) -> None:
    _, root = policy_in_git(tmp_path)
    data = bad_voice(tmp_path)
    proposals = tmp_path / "proposals"
    result = run_loop(
        root, tmp_path, "--measurements", str(data), "--propose", str(proposals), "--cycles", "3", "--act-after", "3"
    )
    out = [x for x in result.stdout.splitlines() if x.startswith("cycle ")]
    assert len(out) == 3
    assert out[0].startswith("cycle 1: ") and "marked@hq fail" in out[0] and "actions: none" in out[0]
    assert "actions: mark hq-rtr1" in out[2] and "applied: False" in out[2]
    assert f"measuring: {data}" in result.stderr and f"proposing: patches to {proposals}" in result.stderr
    assert len(list(proposals.glob("*.patch"))) == 1


def test_without_queue_readings_the_capacity_remediation_holds_with_the_reason(tmp_path: Path) -> None:
    _, root = policy_in_git(tmp_path)
    # voice marked right (EF) but delayed: only the queues could tell where; files have none
    data = measurements(tmp_path / "late.csv", delay_ms=300.0, loss_pct=6.0, dscp=46)
    result = run_loop(
        root, tmp_path, "--measurements", str(data), "--propose", str(tmp_path / "p"), "--json", "--act-after", "1"
    )
    (d,) = lines(result)
    assert d["actions"] == [] and d["devices"] == []
    (hold,) = [h for h in d["holds"] if h["journey"] == "marked"]
    assert "no queue readings: " in hold["reason"]
    assert "capacity remediations hold" in hold["reason"]
    assert not (tmp_path / "p").exists()


def test_a_perception_gap_from_feedback_gives_no_action_with_the_reason(tmp_path: Path) -> None:
    _, root = policy_in_git(tmp_path)
    data = measurements(tmp_path / "good.csv", delay_ms=25.0, loss_pct=0.0, dscp=46)
    feedback = tmp_path / "survey.csv"
    with feedback.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["journey", "site", "time", "score", "kind"])
        for i in range(30):
            w.writerow(["marked", "hq", T0 + i * 10, 1, "mos"])
    opts = ("--measurements", str(data), "--feedback", str(feedback), "--propose", str(tmp_path / "p"), "--json")
    result = run_loop(root, tmp_path, *opts, "--cycles", "4", "--act-after", "1")
    for d in lines(result):
        assert d["actions"] == []
        (hold,) = [h for h in d["holds"] if h["journey"] == "marked"]
        assert hold["reason"].startswith("perception gap at marked@hq") and "changes nothing" in hold["reason"]
    assert not (tmp_path / "p").exists()


# --------------------------------------------------------------------------- errors: one line, exit 1


def test_no_source_at_all_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = marked_repo().write(tmp_path / "repo")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    line = one_error_line(run_loop(root, tmp_path, code=1))
    assert line.startswith("error: nothing to measure: ") and "as root" in line and "--measurements FILE" in line
    # feedback alone is not a measurement
    line = one_error_line(run_loop(root, tmp_path, "--feedback", str(tmp_path / "f.csv"), code=1))
    assert line.startswith("error: nothing to measure: ")


def test_the_lab_path_without_root_or_without_a_lab_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = marked_repo().write(tmp_path / "repo")
    data = bad_voice(tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    line = one_error_line(run_loop(root, tmp_path, "--measurements", str(data), "--lab", code=1))
    assert line == "error: --lab: qoectl loop measures the lab as root only (qoectl lab needs root)"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    empty = tmp_path / "no-lab"
    empty.mkdir()
    line = one_error_line(run_loop(root, tmp_path, "--lab-dir", str(empty), code=1))
    assert line.startswith("error: nothing to measure: no lab is up: start one with `qoectl lab up")
    line = one_error_line(
        run_loop(root, tmp_path, "--measurements", str(data), "--lab", "--lab-dir", str(empty), code=1)
    )
    assert line.startswith("error: --lab: no lab is up")


def test_an_unreadable_file_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    root = marked_repo().write(tmp_path / "repo")
    missing = tmp_path / "missing.csv"
    line = one_error_line(
        run_loop(root, tmp_path, "--measurements", str(missing), "--propose", str(tmp_path / "p"), code=1)
    )
    assert line.startswith("error: ") and "missing.csv" in line and "no such file" in line
    bad = bad_voice(tmp_path)
    with bad.open("a", encoding="utf-8") as f:
        f.write(f"{T0},marked,hq,one_way_delay_ms,fast\n")
    n = len(bad.read_text(encoding="utf-8").splitlines())
    line = one_error_line(
        run_loop(root, tmp_path, "--measurements", str(bad), "--propose", str(tmp_path / "p"), code=1)
    )
    assert f"voice.csv:{n}" in line, line
    assert not (tmp_path / "p").exists()


def test_a_prometheus_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    root = marked_repo().write(tmp_path / "repo")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = one_error_line(run_loop(root, tmp_path, "--prometheus", f"http://127.0.0.1:{port}", code=1))
    assert line.startswith("error: --prometheus: cannot reach Prometheus at http://127.0.0.1:")
    line = one_error_line(run_loop(root, tmp_path, "--prometheus", "ftp://x", code=1))
    assert line.startswith("error: ") and "Prometheus base URL" in line


def test_without_propose_the_change_goes_through_the_apply_engine_and_its_failure_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = marked_repo().write(tmp_path / "repo")
    monkeypatch.delenv("QOECTL_USER", raising=False)
    data = bad_voice(tmp_path)
    opts = ("--measurements", str(data), "--act-after", "1", "--known-hosts", str(tmp_path / "known_hosts"))
    result = run_loop(root, tmp_path, *opts)
    assert "applying: changes go to the inventory's devices through the apply engine" in result.stderr
    assert "actions: mark hq-rtr1" in result.stdout and "applied: False" in result.stdout
    assert "apply: hq-rtr1: failed credentials of device 'hq-rtr1'" in result.stderr
    assert (root / "adjustments" / "loop.yaml").exists()  # the loop's document, as with the lab
