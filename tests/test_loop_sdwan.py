"""Path steering in ``qoectl loop`` on a real two-transport lab (root only): issue 12's demonstration.

A private copy of examples/lab-sdwan (its own name, management /24 and state folder; always taken down, its
cross traffic with it) runs voice, web and bulk (not overloading) from the branch to the hub on ``internet``.
``qoectl lab degrade internet`` then congests the internet ISP's own FIFO from outside the routers until voice
misses its target. The loop must move voice (and only journeys that need it) to ``mpls`` within 3 cycles and
bring it back in target there; once the cross traffic stops, move it back exactly once after the hold time,
and change no path over the 10 cycles after that. Every cycle applies the rendered policy to the routers over
SSH (``qoectl apply``'s engine). Assertions are on the loop's recorded decisions and the measurements, never
on timing; the figures are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from controller.lab import control
from controller.lab.policy import retarget
from tests.lab.qoelab import PrivateLab, requires_lab
from tests.lab.sdwanlab import SDWAN_POLICY, sdwan_lab

pytestmark = [requires_lab, pytest.mark.root]

HOLD = 3
CROSS_KBPS = 14000  # 1.4 x the internet ISP's 10 Mbit/s: its FIFO (500 ms) fills, whatever the routers do
VOICE_DELAY_BUDGET_MS = 150.0  # voice's SLA class (G.711, MOS 4.0): one-way 150 ms


def loop(lab: PrivateLab, policy: Path, tmp: Path, cycles: int, html: Path | None = None) -> list[dict[str, Any]]:
    args = ["loop", str(policy), "--cycles", str(cycles), "--interval-s", "0", "--measure-s", "2", "--json"]
    args += ["--lab-dir", str(lab.root), "--run-dir", str(tmp / "runs"), "--lock-dir", str(tmp / "locks")]
    args += ["--state", str(tmp / "loop-state"), "--act-after", "1", "--min-interval-s", "0"]
    args += ["--path-hold", str(HOLD)]
    if html is not None:
        args += ["--html", str(html)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == cycles
    for d in lines:
        voice = d["figures"].get("voice@branch", {})
        health = {k: (v.get("delay_ms"), v.get("loss_pct"), v.get("sla:voice")) for k, v in d["transports"].items()}
        moves = [(a["kind"], a["journey"], a["device"], a["before"], a["after"]) for a in d["actions"]]
        print(
            f"cycle {d['cycle']} {d['duration_s']} s path {d['paths']['branch-rtr']} verdicts {d['verdicts']} "
            f"voice p99 {voice.get('one_way_delay_p99_ms')} loss {voice.get('loss_pct')} | health {health} | {moves}"
        )
    return lines


def path_actions(lines: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    return [(d["cycle"], a) for d in lines for a in d["actions"] if a["kind"] in ("move_path", "path_back")]


def test_the_loop_moves_voice_off_a_degraded_transport_and_back_once_it_recovers(tmp_path: Path) -> None:
    with sdwan_lab(tmp_path) as lab:
        policy = retarget(SDWAN_POLICY, lab.state(), tmp_path / "policy")

        # Before: the policy applied (cycle 1 finds the routers without it), voice and web on internet, in target.
        before = loop(lab, policy, tmp_path, 2)
        assert before[0]["actions"] and {a["kind"] for a in before[0]["actions"]} == {"reapply"}
        calm = before[-1]
        assert calm["paths"]["branch-rtr"] == {"voice": "internet", "web": "internet", "bulk": "internet"}
        assert calm["verdicts"]["voice@branch"] == "pass", calm
        assert calm["transports"]["branch-rtr/internet"]["sla:voice"] == "pass"
        assert path_actions(before) == []

        # Degrade internet from its ISP: voice misses its target; the loop moves it to mpls within 3 cycles.
        control.degrade(lab.root, "internet", CROSS_KBPS)
        time.sleep(2)  # the ISP's FIFO fills
        degraded = loop(lab, policy, tmp_path, 3)
        first = degraded[0]
        assert first["verdicts"]["voice@branch"] == "fail", first
        assert first["figures"]["voice@branch"]["one_way_delay_p99_ms"] > VOICE_DELAY_BUDGET_MS
        moves = path_actions(degraded)
        voice_moves = [(c, a) for c, a in moves if a["journey"] == "voice"]
        assert [(a["kind"], a["device"], a["before"], a["after"]) for _, a in voice_moves] == [
            ("move_path", "branch-rtr", "internet", "mpls")
        ]
        moved_at = voice_moves[0][0]
        for cycle, a in moves:  # only journeys that needed it: out of target, their transport out of their SLA
            d = next(x for x in degraded if x["cycle"] == cycle)
            assert a["kind"] == "move_path" and a["journey"] != "bulk", a
            assert d["verdicts"][f"{a['journey']}@branch"] == "fail", d
            assert d["transports"]["branch-rtr/internet"][f"sla:{a['journey']}"] == "fail", d
            assert d["transports"]["branch-rtr/mpls"][f"sla:{a['journey']}"] == "pass", d
        for d in degraded:  # the other direction (hub -> branch) is not congested: voice stays on internet there
            assert d["paths"]["hub-rtr"]["voice"] == "internet" and d["verdicts"]["voice@hub"] == "pass", d
            assert d["transports"]["hub-rtr/internet"]["sla:voice"] == "pass", d
        assert all(a["device"] == "branch-rtr" for _, a in moves)
        after = [d for d in degraded if d["cycle"] > moved_at]
        assert after, "moved in the last degraded cycle: no cycle left to see voice in target"
        for d in after:
            assert d["paths"]["branch-rtr"]["voice"] == "mpls" and d["paths"]["branch-rtr"]["bulk"] == "internet"
            assert d["verdicts"]["voice@branch"] == "pass", d
            assert d["figures"]["voice@branch"]["one_way_delay_p99_ms"] < VOICE_DELAY_BUDGET_MS
            assert d["transports"]["branch-rtr/internet"]["sla:voice"] == "fail"  # internet is still congested
        assert "transport: mpls" in (policy / "adjustments" / "loop.yaml").read_text(encoding="utf-8")

        # Recovery: back exactly once after the hold time, then no path change over 10 cycles.
        control.degrade(lab.root, "internet", 0)
        recovered = loop(lab, policy, tmp_path, HOLD + 10, html=tmp_path / "loop.html")
        backs = [(c, a) for c, a in path_actions(recovered) if a["journey"] == "voice"]
        assert [(a["kind"], a["before"], a["after"]) for _, a in backs] == [("path_back", "mpls", "internet")]
        back_at = backs[0][0]
        since = back_at - recovered[0]["cycle"] + 1
        assert since >= HOLD  # the home transport met the SLA for the hold time first
        rest = [d for d in recovered if d["cycle"] > back_at]
        assert len(rest) >= 10
        assert all(d["paths"]["branch-rtr"]["voice"] == "internet" for d in rest)
        assert path_actions(rest) == []
        assert all(d["verdicts"]["voice@branch"] == "pass" for d in rest)
        assert "transport:" not in (policy / "adjustments" / "loop.yaml").read_text(encoding="utf-8")
        report = (tmp_path / "loop.html").read_text(encoding="utf-8")
        assert "path on branch-rtr" in report and "Transport health" in report
        print(f"moved at cycle {moved_at}, back at cycle {back_at} ({since} cycles after the cross traffic stopped)")
