"""Baselines (measure -> fix -> re-measure): ``qoectl baseline record`` and ``qoectl verify --baseline``.

Every figure is recomputed here by hand from the samples written: nearest-rank percentiles of a known list, and
the same / better / worse rule (p50 and p90 each within 10 % of the baseline or the metric's floor).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from controller.evaluate import baseline as bl
from controller.measure.samples import Vocabulary
from controller.pipeline import build
from tests.loop_support import loop_repo

T0 = 1_746_093_600


def csv(rows: list[tuple[int, str, str, str, float]]) -> str:
    return "timestamp,journey,site,metric,value\n" + "".join(f"{t},{j},{s},{m},{v:g}\n" for t, j, s, m, v in rows)


def by_hand(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[math.ceil(q / 100 * len(ordered)) - 1]

    return {"count": len(values), "mean": sum(values) / len(values), "p50": rank(50), "p90": rank(90), "p99": rank(99)}


DELAYS = [20.0 + (i * 37) % 23 for i in range(40)]  # 40 values 20..42 in a scrambled order
LOSS = [0.0, 0.0, 0.1, 0.0, 0.2, 0.0, 0.0, 0.5]


def normal_rows() -> list[tuple[int, str, str, str, float]]:
    rows = [(T0 + i, "voice", "hq", "one_way_delay_ms", d) for i, d in enumerate(DELAYS)]
    rows += [(T0 + i, "voice", "hq", "loss_pct", v) for i, v in enumerate(LOSS)]
    rows += [(T0 + i, "voice", "hq", "dscp", 46) for i in range(5)]  # a code, not a distribution: left out
    rows += [(T0 + i, "bulk", "branch-1", "throughput_kbps", 4000.0 + 10 * i) for i in range(10)]
    rows += [(T0 + i, "crm-web", "hq", "response_time_ms", 300.0) for i in range(3)]  # too few to compare
    return rows


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return loop_repo().write(tmp_path / "repo")


def test_record_keeps_count_mean_and_nearest_rank_percentiles_per_journey_and_segment(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "normal.csv"
    data.write_text(csv(normal_rows()), encoding="utf-8")
    out = tmp_path / "baseline.json"
    result = CliRunner().invoke(cli, ["baseline", "record", str(repo), "--measurements", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["format"] == "qoectl-baseline/1"
    rows = {(r["journey"], r["site"], r["context"]): r["metrics"] for r in saved["segments"]}
    assert set(rows) == {("voice", "hq", "campus"), ("bulk", "branch-1", "branch"), ("crm-web", "hq", "campus")}
    voice = rows[("voice", "hq", "campus")]
    assert set(voice) == {"one_way_delay_ms", "loss_pct"}  # no dscp
    for metric, values in (("one_way_delay_ms", DELAYS), ("loss_pct", LOSS)):
        assert voice[metric] == pytest.approx(by_hand(values))
    throughput = rows[("bulk", "branch-1", "branch")]["throughput_kbps"]
    assert throughput == pytest.approx(by_hand([4000.0 + 10 * i for i in range(10)]))
    assert (throughput["p50"], throughput["p90"], throughput["p99"]) == (4040, 4080, 4090)


def _summary(values: dict[str, list[float]]) -> dict[str, bl.Distribution]:
    return {m: bl.Distribution.of(v) for m, v in values.items()}


def test_same_better_worse_follow_the_documented_tolerance() -> None:
    key = ("voice", "hq", "campus")
    delays = [float(x) for x in range(20, 60)]  # p50 39, p90 55
    before = bl.Baseline(0, 1, {key: _summary({"one_way_delay_ms": delays, "throughput_kbps": [1000.0] * 10})})

    def change(delay_factor: float, throughput: float) -> tuple[str, dict[str, str]]:
        now = bl.Baseline(
            0,
            1,
            {
                key: _summary(
                    {"one_way_delay_ms": [d * delay_factor for d in delays], "throughput_kbps": [throughput] * 10}
                )
            },
        )
        (c,) = bl.compare(before, now)
        return c.change, {m.metric: m.change for m in c.metrics}

    # p50 39 -> 42.9 (+3.9) and p90 55 -> 60.5 (+5.5): within 10 % of each: same
    assert change(1.1, 1000) == ("same", {"one_way_delay_ms": "same", "throughput_kbps": "same"})
    # +12 %: p50 39 -> 43.68, beyond 3.9: worse
    assert change(1.12, 1000) == ("worse", {"one_way_delay_ms": "worse", "throughput_kbps": "same"})
    # lower delay is better; higher throughput is better, beyond the larger of 10 % and 10 kbps
    assert change(0.8, 1000) == ("better", {"one_way_delay_ms": "better", "throughput_kbps": "same"})
    assert change(1.0, 1150) == ("better", {"one_way_delay_ms": "same", "throughput_kbps": "better"})
    assert change(0.8, 850) == ("worse", {"one_way_delay_ms": "better", "throughput_kbps": "worse"})


def test_a_metrics_floor_keeps_tiny_values_from_flipping() -> None:
    key = ("voice", "hq", "campus")
    before = bl.Baseline(0, 1, {key: _summary({"loss_pct": [0.01] * 10})})
    now = bl.Baseline(0, 1, {key: _summary({"loss_pct": [0.05] * 10})})  # five times, but 0.04 points < 0.05
    (c,) = bl.compare(before, now)
    assert c.change == "same"
    worse = bl.Baseline(0, 1, {key: _summary({"loss_pct": [0.07] * 10})})
    assert bl.compare(before, worse)[0].change == "worse"


def test_too_few_samples_new_and_no_data_are_said_so() -> None:
    a, b, c = ("voice", "hq", "campus"), ("crm-web", "hq", "campus"), ("bulk", "branch-1", "branch")
    before = bl.Baseline(0, 1, {a: _summary({"jitter_ms": [1.0] * 4}), c: _summary({"throughput_kbps": [1.0] * 9})})
    now = bl.Baseline(0, 1, {a: _summary({"jitter_ms": [9.0] * 10}), b: _summary({"apdex": [0.9] * 9})})
    got = {x.key: x.change for x in bl.compare(before, now)}
    assert got == {a: "unknown", b: "new", c: "no data"}


def test_verify_with_a_baseline_reports_each_segments_change_with_figures(repo: Path, tmp_path: Path) -> None:
    normal = tmp_path / "normal.csv"
    normal.write_text(csv(normal_rows()), encoding="utf-8")
    base = tmp_path / "baseline.json"
    runner = CliRunner()
    assert (
        runner.invoke(
            cli, ["baseline", "record", str(repo), "--measurements", str(normal), "--out", str(base)]
        ).exit_code
        == 0
    )
    later = [(t + 3600, j, s, m, v * (1.5 if m == "one_way_delay_ms" else 1.0)) for t, j, s, m, v in normal_rows()]
    now = tmp_path / "now.csv"
    now.write_text(csv(later), encoding="utf-8")
    result = runner.invoke(
        cli,
        ["verify", str(repo), "--measurements", str(now), "--baseline", str(base), "--json"],
        catch_exceptions=False,
    )
    data = json.loads(result.output)
    rows = {(r["journey"], r["segment"]["site"]): r for r in data["baseline"]["segments"]}
    voice = rows[("voice", "hq")]
    assert voice["change"] == "worse"
    delay = next(m for m in voice["metrics"] if m["metric"] == "one_way_delay_ms")
    hand = by_hand(DELAYS)
    assert delay["before"]["p50"] == hand["p50"] and delay["after"]["p50"] == pytest.approx(hand["p50"] * 1.5)
    assert delay["delta_p90"] == pytest.approx(hand["p90"] * 0.5)
    assert rows[("bulk", "branch-1")]["change"] == "same"
    assert rows[("crm-web", "hq")]["change"] == "unknown"  # 3 samples each side
    assert data["baseline"]["summary"]["worse"] == 1
    marked = {(r["journey"], r["segment"]["site"]): r["baseline_change"] for r in data["results"]}
    assert marked[("voice", "hq")] == "worse"
    table = runner.invoke(cli, ["verify", str(repo), "--measurements", str(now), "--baseline", str(base)])
    assert "voice@hq" in table.output and "worse" in table.output and "one_way_delay_ms p50" in table.output


def test_a_bad_baseline_file_is_one_error_line(repo: Path, tmp_path: Path) -> None:
    data = tmp_path / "normal.csv"
    data.write_text(csv(normal_rows()), encoding="utf-8")
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"format": "other"}', encoding="utf-8")
    result = CliRunner().invoke(cli, ["verify", str(repo), "--measurements", str(data), "--baseline", str(wrong)])
    assert result.exit_code == 1
    assert "not a qoectl baseline" in result.output and "Traceback" not in result.output


def test_record_from_the_samples_api_matches_the_file(repo: Path) -> None:
    """The library path the loop's report uses gives the figures the CLI writes."""
    from controller.measure.files import FileSource

    policy = build(repo).policy
    vocab = Vocabulary(policy)
    path = repo.parent / "normal.csv"
    path.write_text(csv(normal_rows()), encoding="utf-8")
    samples, problems = FileSource(path).read(vocab, T0 + 10_000)
    assert not problems
    got = bl.record(samples, vocab)
    assert got.segments[("voice", "hq", "campus")]["one_way_delay_ms"] == bl.Distribution(**by_hand(DELAYS))  # type: ignore[arg-type]
    assert bl.from_json(json.loads(got.text())).to_json() == got.to_json()  # read back as written
