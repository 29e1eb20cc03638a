"""The compile benchmark on a tiny fleet, so bench/compile_bench.py cannot silently rot (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

from bench import compile_bench, fleet
from controller.render import platforms


def test_generated_fleet_goes_through_the_real_pipeline_and_the_floor(tmp_path: Path) -> None:
    info = fleet.generate(tmp_path / "policies", devices=60, journeys=50)
    assert info.devices == 60 and info.journeys == 50
    result, run = compile_bench.run_pipeline(info.root)
    assert result.ok and run.devices == 60
    # Devices are spread over every platform that has a renderer, whichever those are today.
    assert {p.platform for p in result.plans} == set(platforms())
    assert {len(p.markings) for p in result.plans} - {0}, "no journey reached any device"
    floor = compile_bench.run_floor(result)
    assert floor.digest == run.digest, "the floor rendered different configs than the pipeline"
    mem = compile_bench.measure_peak_rss(info.root)
    assert mem["devices"] == 60 and mem["peak_rss_mib"] > 0
    data = compile_bench.report(info, compile_bench.Stage(), run, floor, mem)
    assert data["output"]["floor_output_identical"] and data["fleet"]["devices"] == 60
    assert set(data["goals"]) == {"total_under_10s", "peak_under_1GiB", "within_2x_floor"}


def test_the_benchmark_in_two_worker_processes(tmp_path: Path) -> None:
    """Pipeline, floor and memory run in 2 forked workers: the same text, every worker's memory reported."""
    info = fleet.generate(tmp_path / "policies", devices=60, journeys=20)
    result, run = compile_bench.run_pipeline(info.root)
    par = compile_bench.run_parallel(info.root, jobs=2)
    assert par.jobs == 2 and len(par.workers) == 2 and par.devices == 60
    assert par.digest == run.digest, "the workers rendered different configs than one process"
    floor = compile_bench.run_floor(result, jobs=2)
    assert floor.digest_parallel == floor.digest == run.digest
    mem = compile_bench.measure_peak_rss(info.root, jobs=2)
    assert mem["jobs"] == 2 and len(mem["workers"]) == 2
    data = compile_bench.report(info, compile_bench.Stage(), run, floor, mem, par)
    assert data["jobs"] == 2 and data["output"]["floor_output_identical"]
    assert data["memory_mib"]["peak_all_processes"] >= data["memory_mib"]["main_process_peak"] > 0


def test_fleet_generation_is_deterministic(tmp_path: Path) -> None:
    a = fleet.generate(tmp_path / "a", devices=20, journeys=12, seed=3)
    b = fleet.generate(tmp_path / "b", devices=20, journeys=12, seed=3)
    files_a = sorted(p.relative_to(a.root) for p in a.root.rglob("*.yaml"))
    assert files_a == sorted(p.relative_to(b.root) for p in b.root.rglob("*.yaml"))
    assert all((a.root / f).read_bytes() == (b.root / f).read_bytes() for f in files_a)
