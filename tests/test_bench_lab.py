"""bench/lab_bench.py without root: the goals and the table from recorded figures (the lab runs are the loop
tests' business, tests/test_loop_lab.py); the idle lab file has no bulk traffic. No timing asserted."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from bench import lab_bench


def _phase(p99: float, loss: float, mos: float, apdex: float, **more: float) -> dict[str, object]:
    out: dict[str, object] = {"voice_p99_ms": p99, "voice_loss_pct": loss, "voice_mos": mos, "web_apdex": apdex}
    out.update(web_apdex_target=0.9, **more)
    return out


def test_goals_and_table_from_recorded_figures() -> None:
    run = {
        "run": 1,
        "no_qos": _phase(1001, 16.0, 1.0, 0.0),
        "loop_policy": _phase(0.6, 0.0, 4.4, 1.0, bulk_share_of_left_pct=99.0, left_kbps=5500, bulk_kbps=5445),
        "idle": _phase(0.3, 0.0, 4.41, 1.0),
        "loop": {"cycles_to_target": 3, "time_to_target_s": 25.0},
    }
    assert lab_bench.goals(run) == {
        "p99_within_1ms_of_idle": True,
        "no_voice_loss": True,
        "mos_ge_4.3": True,
        "web_apdex_ge_target": True,
        "bulk_ge_90pct_of_left": True,
    }
    worse = dict(run, loop_policy=_phase(1.5, 0.2, 4.2, 0.8, bulk_share_of_left_pct=80.0))
    assert not any(lab_bench.goals(worse).values())
    text = lab_bench.table([dict(run, goals=lab_bench.goals(run))])
    assert "| voice p99 one-way delay, ms | 1001 | 0.6 | 0.3 | - |" in text
    assert "run 1: p99_within_1ms_of_idle yes" in text
    assert all(line.count("|") == 6 for line in text.splitlines() if line.startswith("|"))


def test_the_idle_lab_has_no_bulk_traffic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_bench, "free_management_net", lambda: ipaddress.IPv4Network("198.19.7.0/24"))
    _, path = lab_bench.lab_file(tmp_path, idle=True)
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]
    assert {k for t in spec["traffic"] for k in t} & {"bulk_tcp", "bulk_udp"} == set()
    assert all("throughput" not in p for p in spec["probes"])
    assert spec["routers"][0]["management"] == "198.19.7.0/30"
