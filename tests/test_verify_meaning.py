"""Issue 10, items 9-11: verify, the burn-rate alerts and ``qoe stalls`` mean what the public definitions say.

Every expected number here is recomputed from the samples and the definitions (window means against the
journey's stated targets; the SRE workbook / Sloth burn-rate factor; P.1203.3), never read off a report.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from controller.evaluate import report, slo
from controller.evaluate.engine import Evaluation, Options, SegmentResult, evaluate
from controller.measure.files import FileSource
from controller.measure.samples import Vocabulary
from controller.pipeline import Build
from controller.qoe import stalls
from tests.verify_support import T0, journey_yaml, policy_build, write_csv

HOUR, DAY = 3600.0, 86400.0

# A video-conferencing journey that states its own network targets (delay, jitter, loss); its throughput
# budget is derived by the compiler (bitrate x 1.2), so it is secondary. A voice journey with a 7-day SLO
# period, to check that the burn-rate factors follow the period.
EXTRA = journey_yaml(
    "meet",
    ("udp", 9000, "198.18.50.0/24"),
    {"video": {"mode": "conferencing", "bitrate_kbps": 1500, "one_way_delay_ms": 150, "jitter_ms": 30, "loss_pct": 1}},
    {"window": "5m", "objective_pct": 70},
    priority="high",
    bandwidth={"per_flow_kbps": 1800, "concurrent_flows": 4},
) + journey_yaml(
    "calls-weekly",
    ("udp", "5004", "198.18.60.0/24"),
    {"voice": {"codec": "g711", "mos": 4.0}},
    {"window": "1m", "objective_pct": 99, "period": "7d"},
    priority="critical",
    bandwidth={"per_flow_kbps": 90, "concurrent_flows": 10},
)
TARGETS = {"one_way_delay_ms": 150.0, "jitter_ms": 30.0, "loss_pct": 1.0}  # as stated in EXTRA


@pytest.fixture(scope="module")
def meaning_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return policy_build(tmp_path_factory.mktemp("policy"), EXTRA)


def run(
    build: Build, tmp_path: Path, rows: list[tuple[object, ...]], header: tuple[str, ...] | None = None
) -> Evaluation:
    path = write_csv(tmp_path / "m.csv", rows, header) if header else write_csv(tmp_path / "m.csv", rows)
    samples, diags = FileSource(path).read(Vocabulary(build.policy), T0 + 30 * DAY)
    assert [d.format() for d in diags if d.severity == "error"] == []
    return evaluate(build, samples, (), Options(now=T0 + 30 * DAY))


def one(evaluation: Evaluation, journey: str, site: str) -> SegmentResult:
    return next(r for r in evaluation.results if r.journey == journey and r.segment.name == site)


# --------------------------------------------------------------------------- item 9


def conferencing_windows() -> list[dict[str, list[float]]]:
    """24 five-minute windows of delay, jitter and loss samples (two of each); 6 windows miss a target."""
    windows = []
    for w in range(24):
        delay = [35.0 + w, 60.0]
        jitter = [4.0, 6.0 + w % 3]
        loss = [0.0, 0.4]
        if w in (2, 9, 16):
            delay = [180.0, 200.0]  # mean 190 ms > 150 ms
        if w in (5, 13):
            loss = [1.5, 2.1]  # mean 1.8 % > 1 %
        if w == 20:
            jitter = [25.0, 45.0]  # mean 35 ms > 30 ms
        windows.append({"one_way_delay_ms": delay, "jitter_ms": jitter, "loss_pct": loss})
    return windows


def conferencing_rows(site: str, windows: list[dict[str, list[float]]]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for w, measures in enumerate(windows):
        for metric, values in measures.items():
            for k, value in enumerate(values):
                rows.append((T0 + 300 * w + 10 + 60 * k, "meet", site, metric, value))
    return rows


def test_pinned_budgets_decide_the_windows_and_the_derived_throughput_is_secondary(
    meaning_build: Build, tmp_path: Path
) -> None:
    windows = conferencing_windows()
    # Recomputed from the samples: a window is good when the mean of every stated target meets it.
    good = sum(all(sum(v) / len(v) <= TARGETS[m] for m, v in win.items()) for win in windows)
    assert (good, len(windows)) == (18, 24)
    expected_pct = 100.0 * good / len(windows)  # 75 %
    result = one(run(meaning_build, tmp_path, conferencing_rows("hq", windows)), "meet", "hq")

    eb = result.error_budget
    assert (eb.windows, eb.good, eb.bad, eb.unknown, eb.empty) == (24, good, 24 - good, 0, 0)
    assert eb.compliance_pct == pytest.approx(expected_pct)
    assert result.qoe is not None and result.qoe.model == "windows in target"
    assert result.qoe.score == pytest.approx(expected_pct)
    assert result.composite is not None  # no survey: the composite is the objective component alone
    assert result.composite.score == pytest.approx(expected_pct) and result.composite.band == "good"
    # objective 70 % met by 75 %, every stated target met over the range: in target
    for metric, target in TARGETS.items():
        mean = float(np.mean([v for win in windows for v in win[metric]]))
        got = next(c for c in result.checks if c.name == metric)
        assert got.primary and got.source == "target" and got.target == target
        assert got.measured == pytest.approx(mean) and got.status == "pass"
    throughput = next(c for c in result.checks if c.name == "throughput_kbps")
    assert not throughput.primary and throughput.source == "budget" and throughput.measured is None
    assert throughput.status == "not measured"
    assert result.status == "pass"


def test_unmeasured_checks_are_reported_as_not_measured_everywhere(meaning_build: Build, tmp_path: Path) -> None:
    windows = conferencing_windows()
    rows = conferencing_rows("hq", windows)
    # branch-1 measures delay and loss only: its jitter target cannot be decided, which is not a failure.
    no_jitter = [{m: v for m, v in win.items() if m != "jitter_ms"} for win in windows]
    rows += conferencing_rows("branch-1", no_jitter)
    evaluation = run(meaning_build, tmp_path, rows)
    data = {(r["journey"], r["segment"]["site"]): r for r in report.to_json(evaluation)["results"]}

    hq = data[("meet", "hq")]
    assert hq["status"] == "pass"
    assert hq["error_budget"]["compliance_pct"] == pytest.approx(75.0)
    by_metric = {c["metric"]: c for c in hq["checks"]}
    assert by_metric["throughput_kbps"]["status"] == "not measured"
    assert by_metric["throughput_kbps"]["measured"] is None and by_metric["throughput_kbps"]["primary"] is False

    b1 = data[("meet", "branch-1")]
    jitter = next(c for c in b1["checks"] if c["metric"] == "jitter_ms")
    assert jitter["status"] == "not measured" and jitter["primary"] is True
    # delay and loss were measured in every window: windows failing them are bad, the rest undecided
    bad = sum(
        any(sum(v) / len(v) > TARGETS[m] for m, v in win.items())
        for win in no_jitter  # only what was measured can fail
    )
    eb = b1["error_budget"]
    assert (eb["good"], eb["bad"], eb["unknown"]) == (0, bad, 24 - bad)
    # the range means of delay and loss meet their targets and 19 of 24 windows may still be good (79 % >= 70 %):
    # nothing measured failed, so the segment is unknown, never failed for the jitter nobody measured
    assert b1["status"] == "unknown"
    assert b1["qoe"] is None and b1["composite"] is None  # no "0 % in target" from the decided (bad) windows alone
    assert "jitter_ms: not measured (target <= 30.0 ms)" in b1["reasons"]
    junit = ET.fromstring(report.junit_xml(evaluation))
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    hq_case = cases["meet @ hq"]
    assert hq_case.find("skipped") is None and hq_case.find("failure") is None
    assert "throughput_kbps: not measured (target >= 1800 kbit/s)" in (hq_case.findtext("system-out") or "")
    b1_case = cases["meet @ branch-1"]
    assert b1_case.find("failure") is None and b1_case.find("skipped") is not None
    assert "jitter_ms: not measured (target <= 30.0 ms)" in (b1_case.findtext("system-out") or "")


# --------------------------------------------------------------------------- item 10

# (severity, long look-back, short look-back, share of the period's error budget it may spend)
WORKBOOK = (
    ("page", 1 * HOUR, 5 * 60.0, 0.02),
    ("page", 6 * HOUR, 30 * 60.0, 0.05),
    ("ticket", 3 * DAY, 6 * HOUR, 0.10),
)
HAND = {  # factor = period (h) x budget share / long look-back (h), computed by hand
    7 * DAY: (168 * 0.02 / 1, 168 * 0.05 / 6, 168 * 0.10 / 72),  # 3.36, 1.4, 0.2333
    28 * DAY: (672 * 0.02 / 1, 672 * 0.05 / 6, 672 * 0.10 / 72),  # 13.44, 5.6, 0.9333
    30 * DAY: (720 * 0.02 / 1, 720 * 0.05 / 6, 720 * 0.10 / 72),  # 14.4, 6, 1
}


def test_burn_rate_factors_follow_the_period() -> None:
    assert HAND[30 * DAY] == pytest.approx((14.4, 6.0, 1.0))
    assert HAND[28 * DAY] == pytest.approx((13.44, 5.6, 0.93333333))
    assert HAND[7 * DAY] == pytest.approx((3.36, 1.4, 0.23333333))
    status = np.full(5000, slo.GOOD, dtype=np.int8)
    for period_s, factors in HAND.items():
        alerts = slo.burn_alerts(status, 60.0, 99.0, period_s)
        assert [a.threshold for a in alerts] == pytest.approx(list(factors))
        assert [(a.severity, a.long_s, a.short_s) for a in alerts] == [w[:3] for w in WORKBOOK]
        assert [a.budget_share for a in alerts] == pytest.approx([w[3] for w in WORKBOOK])


@pytest.mark.parametrize("period_s", [7 * DAY, 28 * DAY, 30 * DAY])
@pytest.mark.parametrize("alert", range(3))
def test_an_alert_fires_exactly_when_its_share_of_the_budget_is_spent(period_s: float, alert: int) -> None:
    window_s, objective_pct = 60.0, 99.0
    _, long_s, _, share = WORKBOOK[alert]
    allowed = (1 - objective_pct / 100) * period_s / window_s  # bad windows the whole period may have
    need = share * allowed  # bad windows in the long look-back that spend `share` of the budget
    for bad in (math.floor(need), math.ceil(need)):  # just below and just at / above it
        status = np.full(int(3 * DAY / window_s), slo.GOOD, dtype=np.int8)
        status[-bad:] = slo.BAD  # the short look-back burns as fast as the long one or faster
        got = slo.burn_alerts(status, window_s, objective_pct, period_s)[alert]
        spent = bad / allowed
        assert got.firing is (spent >= share - 1e-12), (period_s / DAY, alert, bad, spent)
        # and the reported burn is the workbook's: error rate over the look-back / (1 - objective)
        assert got.long_burn == pytest.approx((bad / (long_s / window_s)) / 0.01)
        rows = slo.burn_alerts_rows(status[None, :], window_s, objective_pct, period_s)
        assert rows[0][alert] == got


def test_verify_uses_the_journeys_period_for_the_alerts(meaning_build: Build, tmp_path: Path) -> None:
    # 7-day period, 1-minute windows, objective 99 %: 100.8 bad windows allowed; the page (2 %) fires at 2.016
    allowed = 0.01 * 7 * DAY / 60
    for bad, fires in ((2, False), (3, True)):
        rows: list[tuple[object, ...]] = []
        for k in range(60):
            delay = 400.0 if k >= 60 - bad else 30.0
            ts = T0 + 60 * k + 5
            rows += [(ts, "calls-weekly", "hq", "one_way_delay_ms", delay), (ts, "calls-weekly", "hq", "jitter_ms", 1)]
            rows += [(ts, "calls-weekly", "hq", "loss_pct", 0)]
        result = one(run(meaning_build, tmp_path, rows), "calls-weekly", "hq")
        page = result.alerts[0]
        assert page.threshold == pytest.approx(168 * 0.02)
        assert page.long_burn == pytest.approx((bad / 60) / 0.01)
        assert page.firing is fires is (bad / allowed >= 0.02)
        assert result.error_budget.budget_consumed_pct == pytest.approx(100 * bad / allowed)


# --------------------------------------------------------------------------- item 11


def qoectl(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


def test_qoe_stalls_rejects_a_stall_after_the_end_of_the_media() -> None:
    after = qoectl("qoe", "stalls", "--duration-s", "60", "--stall", "90:5")
    assert after.exit_code == 1, after.output
    assert "--stall: '90:5'" in after.stderr and "after the end of the media (60 s)" in after.stderr
    as_json = qoectl("qoe", "stalls", "--duration-s", "60", "--stall", "0:1", "--stall", "60.5:2", "--json")
    assert as_json.exit_code == 1 and "stall_score" not in as_json.stdout
    assert json.loads(as_json.stdout)["ok"] is False
    # a stall at the very end is inside the media and scores by P.1203.3: w(0) = 1, N = 1, I = 0
    end = json.loads(qoectl("qoe", "stalls", "--duration-s", "60", "--stall", "60:5", "--json").stdout)
    si = math.exp(-1 / 9.35158684) * math.exp(-(5 * 1.0 / 60) / 0.91890815)
    assert end["stall_score"] == pytest.approx(1 + 4 * si, abs=1e-4) and end["ignored_stalls"] == 0


def test_verify_leaves_out_a_session_whose_stall_lies_after_its_end(meaning_build: Build, tmp_path: Path) -> None:
    header = ("timestamp", "journey", "site", "metric", "value", "session", "position_s")
    rows = [
        (T0, "tv", "hq", "session_duration_s", 60, "a", ""),
        (T0 + 30, "tv", "hq", "stall_s", 5, "a", 90),  # after the end: inconsistent, not a perfect session
        (T0 + 5, "tv", "hq", "session_duration_s", 120, "b", ""),
        (T0 + 50, "tv", "hq", "stall_s", 3, "b", 40),
    ]
    evaluation = run(meaning_build, tmp_path, rows, header)
    result = one(evaluation, "tv", "hq")
    b = stalls.stall_score(120, [stalls.Stall(40, 3)])
    assert result.qoe is not None and result.qoe.value == pytest.approx(b.stall_score)  # session b alone
    rebuffering = next(c for c in result.checks if c.name == "rebuffering_pct")
    assert rebuffering.measured == pytest.approx(100 * 3 / (120 + 3))
    assert any("after the end of the media" in n for n in evaluation.notes)
