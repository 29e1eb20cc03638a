"""``qoectl loop`` on the bundled lab (root only): the demonstration of issue 11, scenarios A-D.

Each test brings up a private copy of the bundled lab (tests/lab/qoelab.py) and always takes it down.
Short measurement windows (3 s) and ``--interval-s 0`` keep the whole file at a few minutes; cycle
durations are printed (``pytest -s``), not asserted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from controller.cli.main import cli
from controller.lab import control
from tests.lab.qoelab import PrivateLab, requires_lab, running_lab

pytestmark = requires_lab

# The lab's guardrails: act on the first violating cycle (the ISP's queue shows within one), wait 15 calm
# cycles before probing a shaper upwards, lower it to 0.85 x the measured capacity in one step (so the ISP's
# standing queue drains within a cycle or two).
LAB_LIMITS = ["--act-after", "1", "--relax-after", "15", "--headroom", "0.8", "--max-step-pct", "35"]


def loop(lab: PrivateLab, policy: Path, tmp: Path, cycles: int, *more: str) -> list[dict[str, Any]]:
    args = [
        "loop",
        str(policy),
        "--cycles",
        str(cycles),
        "--interval-s",
        "0",
        "--measure-s",
        "4",
        "--json",
        "--lab-dir",
        str(lab.root),
        "--run-dir",
        str(tmp / "runs"),
        "--lock-dir",
        str(tmp / "locks"),
        *LAB_LIMITS,
        *more,
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    for d in lines:
        figs = {
            k: (v.get("one_way_delay_p99_ms"), v.get("loss_pct"), v.get("E-model MOS")) for k, v in d["figures"].items()
        }
        acts = [(a["kind"], a["device"], a["before"], a["after"]) for a in d["actions"]]
        print(f"cycle {d['cycle']} {d['duration_s']} s {d['verdicts']} {acts} applied={d['applied']} {figs}")
    assert len(lines) == cycles
    return lines


def all_pass(d: dict[str, Any]) -> bool:
    return all(v == "pass" for v in d["verdicts"].values())


def converged_then_stable(lines: list[dict[str, Any]], within: int, stable: int) -> int:
    first = next(i for i, d in enumerate(lines) if all_pass(d))
    assert first < within, f"not in target within {within} cycles"
    after = lines[first + 1 : first + 1 + stable]
    assert len(after) == stable
    for d in after:
        assert d["actions"] == [], d
        assert d["verdicts"] == lines[first]["verdicts"], d
    return first + 1


def test_a_no_qos_the_loop_brings_every_journey_in_target_and_holds_d_perception_gap(tmp_path: Path) -> None:
    with running_lab(tmp_path) as lab:
        policy = lab.policy(tmp_path / "policy")
        time.sleep(3)  # the overload fills the ISP's FIFO
        lines = loop(lab, policy, tmp_path, 13)
        first = lines[0]
        assert first["verdicts"]["voice@branch"] == "fail" and first["verdicts"]["web@branch"] == "fail"
        assert first["figures"]["voice@branch"]["one_way_delay_p99_ms"] > 200
        assert {a["kind"] for a in first["actions"]} == {"reapply"} and first["applied"] is True
        converged_then_stable(lines, 3, 10)

        # D: the network in budget, the users unhappy: no QoS change, and the hold says why.
        now = time.time()
        rows = ["journey,site,time,score,kind"]
        rows += [f"voice,branch,{now + i * 0.5:.1f},1.5,mos" for i in range(400)]
        feedback = tmp_path / "feedback.csv"
        feedback.write_text("\n".join(rows) + "\n", encoding="utf-8")
        gap = loop(lab, policy, tmp_path, 2, "--feedback", str(feedback))
        for d in gap:
            assert d["actions"] == [] and d["verdicts"]["voice@branch"] == "pass", d
            assert any("perception gap at voice@branch" in h["reason"] for h in d["holds"]), d["holds"]


def test_b_shaper_above_the_real_capacity_is_lowered_and_c_not_undone_in_a_rush(tmp_path: Path) -> None:
    with running_lab(tmp_path) as lab:
        policy = lab.policy(tmp_path / "policy")
        inventory = policy / "inventory.yaml"
        docs = list(yaml.safe_load_all(inventory.read_text(encoding="utf-8")))
        for doc in docs:
            for device in doc["spec"]["devices"]:
                for iface in device["interfaces"]:
                    if iface["role"] == "wan":
                        iface["bandwidth_kbps"] = 10000  # the inventory says 10 Mbit/s ...
        inventory.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        control.set_capacity(lab.root, "wan", 8000)  # ... the ISP's line carries 8
        applied = CliRunner().invoke(
            cli,
            ["apply", str(policy), "--known-hosts", str(lab.state().files.known_hosts)]
            + ["--lock-dir", str(tmp_path / "locks"), "--run-dir", str(tmp_path / "apply"), "--json"],
            env={"QOECTL_LAB_USER": "root"},
            catch_exceptions=False,
        )
        assert applied.exit_code == 0, applied.output
        time.sleep(3)
        lines = loop(lab, policy, tmp_path, 13)
        assert lines[0]["verdicts"]["voice@branch"] == "fail"
        lowered = [a for d in lines for a in d["actions"] if a["kind"] == "lower_shaper"]
        assert lowered and lowered[0]["device"] == "branch-rtr" and lowered[0]["before"] == 10000
        assert lowered[0]["after"] < 8000
        converged_then_stable(lines, 3, 10)
        loop_doc = (policy / "adjustments" / "loop.yaml").read_text(encoding="utf-8")
        assert "shaper:" in loop_doc and "bottleneck is downstream" in loop_doc

        # C: the overload removed: the lowered shaper stays (no raise within M calm cycles), nothing oscillates.
        control.set_load(lab.root, 0.5)
        calm = loop(lab, policy, tmp_path, 4)
        for d in calm:
            assert d["actions"] == [], d
            assert all_pass(d), d
        assert (policy / "adjustments" / "loop.yaml").read_text(encoding="utf-8") == loop_doc
