"""The compile benchmark's validation case on a few hundred journeys, so it cannot silently rot (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

from bench import compile_bench, fleet, journeys
from controller.load.loader import load_policy
from controller.pipeline import validate_policy


def test_the_generated_journeys_are_valid_and_overlap_only_with_the_same_treatment(tmp_path: Path) -> None:
    info = journeys.generate(tmp_path / "policies", 700)
    assert info.journeys == 702  # and the two umbrella journeys
    policy, problems = load_policy(info.root)
    assert not problems and len(policy.journeys) == 702
    own = [m.destination_prefixes for j in policy.journeys if not j.name.startswith("umbrella") for m in j.matches[:1]]
    assert len(set(own)) == 700  # each journey its own prefix: only the umbrellas overlap others
    validated = validate_policy(policy, problems)
    assert not [d.format() for d in validated.diagnostics if d.severity == "error"]


def test_the_validation_case_is_reported_with_its_ratios(tmp_path: Path) -> None:
    run = compile_bench.run_validation(tmp_path / "validation", 300)
    assert (run.journeys, run.small_journeys, run.errors) == (302, 32, 0)
    assert run.load.wall_s > 0 and run.validate.wall_s > 0 and run.small.wall_s > 0
    info = fleet.generate(tmp_path / "fleet", devices=20, journeys=10)
    result, pipeline = compile_bench.run_pipeline(info.root)
    floor = compile_bench.run_floor(result)
    mem = {"peak_rss_mib": 1.0, "vm_hwm_mib": 1.0, "workers": [], "total_wall_s": 1.0}
    data = compile_bench.report(info, compile_bench.Stage(), pipeline, floor, mem, validation=run)
    v = data["validation"]
    assert v["journeys"] == 302 and v["errors"] == 0
    assert set(v["ratios"]) == {"validate_to_load", "validate_to_tenth"}
    assert set(v["goals"]) == {"validate_within_load", "validate_scales_with_journeys"}
    compile_bench._table(data)  # renders with the validation rows


def test_journey_generation_is_deterministic(tmp_path: Path) -> None:
    a = journeys.generate(tmp_path / "a", 1200)
    b = journeys.generate(tmp_path / "b", 1200)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*.yaml"))
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*.yaml")) and len(files) == 4
    assert all((a.root / f).read_bytes() == (b.root / f).read_bytes() for f in files)


def test_prefixes_are_distinct_and_documentation_ranges_only() -> None:
    nets = [journeys.prefix(i) for i in (0, 1, journeys.V4_SLOTS - 1, journeys.V4_SLOTS, journeys.V4_SLOTS + 70_000)]
    assert len(set(nets)) == len(nets)
    assert nets[0] == "198.18.0.0/30" and nets[2] == "198.19.255.252/30"
    assert nets[3] == "2001:db8:0:0::/64" and nets[4] == "2001:db8:1:1170::/64"
