"""Evaluation semantics: verdicts, E-model bounds, Apdex, stalls, error budgets, burn rates, ranking, feedback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.evaluate import report
from controller.evaluate.engine import Evaluation, Options, SegmentResult, evaluate
from controller.measure.feedback import read_feedback
from controller.measure.files import FileSource
from controller.measure.samples import SampleSet, Vocabulary
from controller.pipeline import Build
from controller.qoe import emodel
from controller.qoe.composite import CONTENT_USERS, UNHAPPY_USERS
from tests.verify_support import T0, policy_build, voice_rows, write_csv

NOW = T0 + 30 * 86400


@pytest.fixture(scope="module")
def lab_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return policy_build(tmp_path_factory.mktemp("policy"))


def run(
    lab_build: Build,
    tmp_path: Path,
    rows: list[tuple[object, ...]],
    survey: list[tuple[object, ...]] | None = None,
    header: tuple[str, ...] | None = None,
    **options: object,
) -> Evaluation:
    vocab = Vocabulary(lab_build.policy)
    path = write_csv(tmp_path / "m.csv", rows, header) if header else write_csv(tmp_path / "m.csv", rows)
    samples, diags = FileSource(path).read(vocab, NOW)
    assert [d.format() for d in diags if d.severity == "error"] == []
    answers = ()
    if survey is not None:
        got, diags = read_feedback(
            write_csv(tmp_path / "s.csv", survey, ("journey", "site", "time", "score", "kind")), vocab, NOW
        )
        assert not diags
        answers = got
    return evaluate(lab_build, samples, answers, Options(now=NOW, **options))  # type: ignore[arg-type]


def one(evaluation: Evaluation, journey: str, site: str) -> SegmentResult:
    return next(r for r in evaluation.results if r.journey == journey and r.segment.name == site)


def check(result: SegmentResult, name: str):  # type: ignore[no-untyped-def]
    return next(c for c in result.checks if c.name == name)


def test_voice_is_judged_by_the_emodel_mos(lab_build: Build, tmp_path: Path) -> None:
    rows = voice_rows("branch-2", 180, 5, 3) + voice_rows("branch-1", 30, 2, 0.1)
    ev = run(lab_build, tmp_path, rows, journeys=("voice",))
    bad, good, silent = one(ev, "voice", "branch-2"), one(ev, "voice", "branch-1"), one(ev, "voice", "hq")
    expected = emodel.voice_quality(180, 5, 3, "g711").mos
    assert bad.status == "fail"
    assert check(bad, "mos").measured == pytest.approx(expected)
    assert check(bad, "mos").margin == pytest.approx(expected - 4.0)
    assert bad.reasons[0].startswith("mos 2.")
    assert any("secondary: loss_pct 3.00 % misses" in r for r in bad.reasons)
    assert bad.qoe is not None and bad.qoe.model == "E-model MOS"
    assert good.status == "pass" and check(good, "mos").status == "pass"
    assert silent.status == "unknown" and silent.reasons == ("no measurements",)
    assert ev.status == "fail" and report.exit_code(ev) == 1
    assert [r.status for r in ev.results] == ["fail", "unknown", "pass"]


def test_missing_inputs_give_an_upper_bound_that_proves_only_failures(lab_build: Build, tmp_path: Path) -> None:
    rows = [(T0, "voice", "hq", "one_way_delay_ms", 20), (T0, "voice", "branch-1", "one_way_delay_ms", 400)]
    ev = run(lab_build, tmp_path, rows, journeys=("voice",))
    hq, b1 = check(one(ev, "voice", "hq"), "mos"), check(one(ev, "voice", "branch-1"), "mos")
    assert hq.bound and hq.status == "unknown" and hq.measured == pytest.approx(emodel.voice_quality(20, 0, 0).mos)
    assert b1.bound and b1.status == "fail"
    assert one(ev, "voice", "hq").status == "unknown"
    assert report.exit_code(run(lab_build, tmp_path, rows[:1], journeys=("voice",))) == 3


def test_compliance_objective_fails_a_segment_whose_mean_is_fine(lab_build: Build, tmp_path: Path) -> None:
    rows = []
    for k in range(20):  # 20 five-minute windows, the 8th bad
        delay = 400 if k == 7 else 30
        ts = T0 + 300 * k + 10
        rows += [
            (ts, "voice", "hq", "one_way_delay_ms", delay),
            (ts, "voice", "hq", "jitter_ms", 1),
            (ts, "voice", "hq", "loss_pct", 0),
        ]
    result = one(run(lab_build, tmp_path, rows, journeys=("voice",)), "voice", "hq")
    eb = result.error_budget
    assert check(result, "mos").status == "pass"
    assert (eb.windows, eb.good, eb.bad, eb.empty) == (20, 19, 1, 0)
    assert eb.compliance_pct == pytest.approx(95.0)
    assert eb.met is False and result.status == "fail"
    assert "95.0 % of windows in target at best, objective 99 %" in result.reasons
    # 1 bad window of the 8640 * 1 % = 86.4 the 30-day period allows
    assert eb.budget_consumed_pct == pytest.approx(100 / 86.4)
    alerts = {a.name: a for a in result.alerts}
    assert alerts["14.4x over 1 h and 5 min"].firing is False  # the last window is good
    assert alerts["1x over 3 d and 6 h"].long_burn == pytest.approx((1 / 20) / 0.01)


def test_burn_rate_alerts_fire_when_both_windows_burn(lab_build: Build, tmp_path: Path) -> None:
    rows = []
    for k in range(12):
        ts = T0 + 300 * k + 10
        rows += voice_rows("hq", 30, 1, 0, minutes=0)
        rows += [(ts, "voice", "hq", "one_way_delay_ms", 400 if k >= 10 else 30), (ts, "voice", "hq", "jitter_ms", 1)]
        rows += [(ts, "voice", "hq", "loss_pct", 0)]
    result = one(run(lab_build, tmp_path, rows, journeys=("voice",)), "voice", "hq")
    fast = next(a for a in result.alerts if a.threshold == 14.4)
    assert fast.long_burn == pytest.approx((2 / 12) / 0.01)
    assert fast.short_burn == pytest.approx(100.0)
    assert fast.firing is True and fast.severity == "page"
    assert "burn-rate page: 14.4x over 1 h and 5 min" in result.reasons


def test_empty_windows_make_it_unknown_never_a_pass(lab_build: Build, tmp_path: Path) -> None:
    rows = voice_rows("hq", 30, 1, 0, minutes=5)
    rows += [
        (T0 + 3600 + 60 * k, "voice", "hq", m, v)
        for k in range(5)
        for m, v in (("one_way_delay_ms", 30), ("jitter_ms", 1), ("loss_pct", 0))
    ]
    result = one(run(lab_build, tmp_path, rows, journeys=("voice",)), "voice", "hq")
    eb = result.error_budget
    assert check(result, "mos").status == "pass"
    assert eb.bad == 0 and eb.empty > 0 and eb.met is None
    assert result.status == "unknown"
    assert any("windows without a verdict" in r for r in result.reasons)


def test_windows_are_aligned_to_the_end_of_the_range(lab_build: Build, tmp_path: Path) -> None:
    rows = voice_rows("hq", 30, 1, 0, minutes=10)  # T0 .. T0+540
    result = one(run(lab_build, tmp_path, rows, journeys=("voice",)), "voice", "hq")
    assert result.error_budget.windows == 2
    assert [t for t, _ in result.series] == [T0 + 240, T0 + 540]
    narrowed = run(lab_build, tmp_path, rows, journeys=("voice",), start=T0 + 300, end=T0 + 540)
    assert one(narrowed, "voice", "hq").samples == 3 * 4  # (start, end]: minutes 6-9
    assert any("outside the range" in n for n in narrowed.notes)


def test_apdex_response_time_and_errors_from_transactions(lab_build: Build, tmp_path: Path) -> None:
    times = [100] * 14 + [600, 900, 1500, 2600, 3000]  # T = 500 ms: 14 satisfied, 3 tolerating, 2 frustrated
    rows = [(T0 + i, "web", "hq", "response_time_ms", t) for i, t in enumerate(times)]
    rows.append((T0 + 30, "web", "hq", "errors", 1))
    result = one(run(lab_build, tmp_path, rows, journeys=("web",)), "web", "hq")
    apdex = check(result, "apdex")
    assert apdex.measured == pytest.approx((14 + 3 / 2) / 20)
    assert apdex.samples == 20
    assert check(result, "error_rate_pct").measured == pytest.approx(5.0)
    assert check(result, "response_time_ms").measured == 3000  # nearest rank: ceil(0.95 x 19) = the 19th
    assert result.status == "fail"  # 0.775 < 0.9
    assert result.qoe is not None and result.qoe.model == "Apdex"


def test_video_sessions_use_the_p1203_stall_model(lab_build: Build, tmp_path: Path) -> None:
    header = ("timestamp", "journey", "site", "metric", "value", "session", "position_s")
    rows = [
        (T0, "tv", "hq", "session_duration_s", 120, "a", ""),
        (T0, "tv", "hq", "startup_s", 2, "a", ""),
        (T0 + 60, "tv", "hq", "stall_s", 3, "a", 60),
        (T0 + 5, "tv", "hq", "session_duration_s", 120, "b", ""),
        (T0 + 5, "tv", "hq", "startup_s", 1, "b", ""),
    ]
    result = one(run(lab_build, tmp_path, rows, header=header, journeys=("tv",)), "tv", "hq")
    from controller.qoe.stalls import Stall, stall_score

    a = stall_score(120, [Stall(0, 2), Stall(60, 3)]).stall_score
    b = stall_score(120, [Stall(0, 1)]).stall_score
    assert result.qoe is not None and result.qoe.model == "P.1203.3 stall score"
    assert result.qoe.value == pytest.approx((a + b) / 2)
    assert check(result, "startup_s").measured == pytest.approx(1.5)
    assert check(result, "rebuffering_pct").measured == pytest.approx(100 * 3 / (240 + 3))
    assert check(result, "rebuffering_pct").status == "pass"  # 1.23 % <= 2 %
    assert result.status == "pass"
    assert result.users == 2 and result.users_source == "distinct sessions measured"


def test_perception_gap_both_ways(lab_build: Build, tmp_path: Path) -> None:
    rows = voice_rows("branch-1", 30, 2, 0.1) + voice_rows("branch-2", 180, 5, 3)
    survey = [("voice", "branch-1", T0, 2, "mos")] * 5 + [("voice", "branch-2", T0, 5, "mos")] * 5
    ev = run(lab_build, tmp_path, rows, survey, journeys=("voice",))
    happy_net, sad_net = one(ev, "voice", "branch-1"), one(ev, "voice", "branch-2")
    assert happy_net.status == "pass" and happy_net.perception_gap == UNHAPPY_USERS
    assert sad_net.status == "fail" and sad_net.perception_gap == CONTENT_USERS
    assert happy_net.feedback is not None and happy_net.feedback.survey_mos == 2.0
    assert happy_net.composite is not None
    objective = (emodel.voice_quality(30, 2, 0.1).mos - 1) / 4 * 100
    assert happy_net.composite.score == pytest.approx((0.6 * objective + 0.2 * 25) / 0.8)


def test_too_few_answers_do_not_make_a_gap(lab_build: Build, tmp_path: Path) -> None:
    rows = voice_rows("branch-1", 30, 2, 0.1)
    ev = run(lab_build, tmp_path, rows, [("voice", "branch-1", T0, 1, "mos")] * 4, journeys=("voice",))
    result = one(ev, "voice", "branch-1")
    assert result.feedback is not None and result.feedback.score is None
    assert result.perception_gap is None


def test_worst_first_users_affected_times_severity(lab_build: Build, tmp_path: Path) -> None:
    rows = voice_rows("branch-2", 120, 5, 1.2) + voice_rows("hq", 250, 20, 5)
    rows += [(T0, "voice", "branch-2", "users", 500), (T0, "voice", "hq", "users", 5)]
    ev = run(lab_build, tmp_path, rows, journeys=("voice",))
    first, second = ev.results[0], ev.results[1]
    assert (first.segment.name, second.segment.name) == ("branch-2", "hq")  # many users, milder miss first
    assert first.users == 500 and first.users_source.startswith("measured")
    assert first.impact > second.impact > 0
    assert second.severity > first.severity
    assert [r.status for r in ev.results] == sorted(
        (r.status for r in ev.results), key=["fail", "unknown", "pass"].index
    )


def test_remarked_dscp_is_a_secondary_finding(lab_build: Build, tmp_path: Path) -> None:
    rows = voice_rows("hq", 30, 1, 0) + [(T0, "voice", "hq", "dscp", 0)]
    result = one(run(lab_build, tmp_path, rows, journeys=("voice",)), "voice", "hq")
    dscp = check(result, "dscp")
    assert dscp.status == "fail" and dscp.measured == 0 and dscp.target == 46 and not dscp.primary
    assert result.status == "pass"
    assert "secondary: dscp 0 misses == 46" in result.reasons


def test_bulk_throughput_and_journeys_without_a_target(lab_build: Build, tmp_path: Path) -> None:
    rows = [(T0, "backups", "hq", "throughput_kbps", 800)]
    result = one(run(lab_build, tmp_path, rows, journeys=("backups",)), "backups", "hq")
    assert result.status == "fail" and check(result, "throughput_kbps").margin == pytest.approx(-200)


def test_output_is_deterministic_json(lab_build: Build, tmp_path: Path) -> None:
    rows = voice_rows("branch-2", 180, 5, 3) + [(T0 + i, "web", "hq", "response_time_ms", 100 + i) for i in range(30)]
    a = json.dumps(report.to_json(run(lab_build, tmp_path, rows)), sort_keys=True)
    b = json.dumps(report.to_json(run(lab_build, tmp_path, list(reversed(rows)))), sort_keys=True)
    assert a == b


def test_no_samples_at_all_is_unknown(lab_build: Build) -> None:
    ev = evaluate(lab_build, SampleSet.empty(), (), Options(now=NOW))
    assert ev.status == "unknown" and report.exit_code(ev) == 3
    assert all(r.reasons == ("no measurements",) for r in ev.results)
