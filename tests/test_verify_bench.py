"""The verify benchmark on a small file, so bench/verify_bench.py cannot silently rot (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

from bench import verify_bench
from controller.measure import fastcsv


def test_bench_runs_the_real_verify_path_on_both_readers(tmp_path: Path) -> None:
    verify_bench.write_policy(tmp_path / "policy")
    verify_bench.write_samples(tmp_path / "samples.csv", 10_000)
    fast = verify_bench.measure(tmp_path / "policy", tmp_path / "samples.csv")
    exact = verify_bench.measure(tmp_path / "policy", tmp_path / "samples.csv", exact=True)
    assert fast["reader"] == ("pyarrow fast path" if fastcsv.available() else "exact path (no pyarrow)")
    assert str(exact["reader"]).startswith("exact path")
    assert fast["samples"] == fast["csv_rows"] == exact["samples"] == 10_000
    assert fast["segments"] == exact["segments"] == verify_bench.JOURNEYS * verify_bench.SITES
    assert fast["fail"] == exact["fail"] > 0
    assert all(float(fast[k]) > 0 for k in ("read_bytes_s", "parse_s", "evaluate_s", "peak_rss_mib"))


def test_process_runs_time_the_real_command_and_the_pyarrow_floor(tmp_path: Path) -> None:
    verify_bench.write_policy(tmp_path / "policy")
    verify_bench.write_samples(tmp_path / "samples.csv", 10_000)
    r = verify_bench.process_runs(tmp_path / "policy", tmp_path / "samples.csv", runs=2)
    assert r["exit"] == {1}  # about 5 % of the segments are out of target: verify's exit code, not a crash
    assert len(r["verify_s"]) == len(r["floor_s"]) == len(r["ratio"]) == 2
    assert all(x > 0 for k in ("verify_s", "verify_rss_mib", "floor_s", "floor_rss_mib") for x in r[k])
