"""Measurement files: every format reads the same samples; every bad row is named by file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from controller.measure import metrics as mt
from controller.measure.feedback import read_feedback
from controller.measure.files import FileSource
from controller.measure.samples import SampleSet, Vocabulary
from controller.pipeline import Build
from tests.verify_support import T0, policy_build, write_csv

NOW = T0 + 86400


@pytest.fixture(scope="module")
def lab_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return policy_build(tmp_path_factory.mktemp("policy"))


@pytest.fixture(scope="module")
def vocab(lab_build: Build) -> Vocabulary:
    return Vocabulary(lab_build.policy)


def read(path: Path, vocab: Vocabulary) -> tuple[SampleSet, list[str]]:
    source = FileSource(path)
    samples, diags = source.read(vocab, NOW)
    return samples, [d.format().replace(source.name, path.name) for d in diags]


def test_csv_reads_coded_samples(tmp_path: Path, vocab: Vocabulary) -> None:
    path = write_csv(
        tmp_path / "m.csv",
        [
            (T0, "voice", "branch-2", "one_way_delay_ms", "180"),
            ("2025-01-01T00:01:00Z", "voice", "branch-2", "loss_pct", 3),
        ],
    )
    samples, problems = read(path, vocab)
    assert problems == []
    assert len(samples) == 2
    assert samples.ts.tolist() == [T0, T0 + 60]
    assert [vocab.journeys[j] for j in samples.journey] == ["voice", "voice"]
    assert [vocab.segments[s].name for s in samples.segment] == ["branch-2", "branch-2"]
    assert [mt.NAMES[m] for m in samples.metric] == ["one_way_delay_ms", "loss_pct"]
    assert samples.value.tolist() == [180.0, 3.0]


def test_context_only_rows_and_aliases(tmp_path: Path, vocab: Vocabulary) -> None:
    path = write_csv(
        tmp_path / "m.csv",
        [(T0, "web", "branch", "response_time_ms", 120)],
        header=("ts", "flow", "context", "metric", "value"),
    )
    samples, problems = read(path, vocab)
    assert problems == []
    segment = vocab.segments[int(samples.segment[0])]
    assert (segment.kind, segment.name, segment.label) == ("context", "branch", "branch (context)")


def test_json_array_and_jsonl_give_the_same_samples_as_csv(tmp_path: Path, vocab: Vocabulary) -> None:
    rows = [
        {"timestamp": T0, "journey": "voice", "site": "hq", "metric": "jitter_ms", "value": 4.5},
        {
            "timestamp": T0 + 1,
            "journey": "tv",
            "site": "hq",
            "metric": "stall_s",
            "value": 2,
            "session": "s1",
            "position_s": 12,
        },
    ]
    (tmp_path / "m.json").write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    a, pa = read(tmp_path / "m.json", vocab)
    b, pb = read(tmp_path / "m.jsonl", vocab)
    assert pa == pb == []
    for col in ("ts", "journey", "segment", "metric", "value", "session"):
        assert getattr(a, col).tolist() == getattr(b, col).tolist()
    assert a.sessions == ("s1",)
    assert np.isnan(a.position[0]) and a.position[1] == 12.0


def test_openmetrics_with_labels_and_foreign_families(tmp_path: Path, vocab: Vocabulary) -> None:
    path = tmp_path / "m.om"
    path.write_text(
        "# TYPE qoectl_one_way_delay_ms gauge\n"
        f'qoectl_one_way_delay_ms{{journey="voice",site="branch-1",instance="x"}} 42.5 {T0:.0f}\n'
        f'qoectl_loss_pct{{journey="voice",site="branch-1"}} 0.5 {T0 + 60:.0f}\n'
        f'node_load1{{instance="x"}} 0.3 {T0:.0f}\n'
        "# EOF\n"
        'qoectl_loss_pct{journey="nope"} 1 1\n'
    )
    samples, problems = read(path, vocab)
    assert samples.value.tolist() == [42.5, 0.5]
    assert len(problems) == 1 and problems[0].startswith("warning: ")
    assert "node_load1" in problems[0]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ((T0, "voice", "branch-2", "one_way_delay_ms", ""), "m.csv:3:1: value: value is missing"),
        ((T0, "voice", "branch-2", "one_way_delay_ms", "-3.5"), "m.csv:3:1: value: negative one-way delay -3.5 ms"),
        ((T0, "voice", "branch-2", "jitter_ms", "-1"), "m.csv:3:1: value: jitter_ms -1 must not be below 0"),
        ((T0, "voice", "branch-2", "loss_pct", "101"), "m.csv:3:1: value: loss_pct 101 is above 100"),
        (
            (T0, "voise", "branch-2", "loss_pct", "1"),
            "m.csv:3:1: journey: unknown journey 'voise'; hint: did you mean 'voice'?",
        ),
        ((T0, "voice", "branch-9", "loss_pct", "1"), "m.csv:3:1: site: unknown site 'branch-9'"),
        (
            (T0, "voice", "branch-2", "los_pct", "1"),
            "m.csv:3:1: metric: unknown metric 'los_pct'; hint: did you mean 'loss_pct'?",
        ),
        (
            (NOW + 3600, "voice", "branch-2", "loss_pct", "1"),
            "m.csv:3:1: timestamp: timestamp is 3600 s in the future: clock skew",
        ),
        ((T0 * 1000, "voice", "branch-2", "loss_pct", "1"), "looks like milliseconds"),
        (("yesterday", "voice", "branch-2", "loss_pct", "1"), "m.csv:3:1: timestamp: 'yesterday' is not a timestamp"),
        ((T0, "", "branch-2", "loss_pct", "1"), "m.csv:3:1: journey: journey is missing"),
        ((T0, "tv", "branch-2", "stall_s", "2"), "a stall_s sample needs a session and a position_s"),
        ((T0, "voice", "branch-2", "dscp", "46.5"), "dscp must be a whole number"),
    ],
)
def test_bad_rows_are_named_by_file_line_and_field(
    tmp_path: Path, vocab: Vocabulary, row: tuple[object, ...], expected: str
) -> None:
    good = (T0, "voice", "branch-2", "loss_pct", "0.1")
    samples, problems = read(write_csv(tmp_path / "m.csv", [good, row]), vocab)
    assert len(samples) == 1, "the bad row is left out, the good one kept"
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert "hint:" in problems[0]


def test_multiline_records_keep_exact_line_numbers(tmp_path: Path, vocab: Vocabulary) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "timestamp,journey,site,metric,value\n"
        f'{T0},"voice",hq,loss_pct,0.1\n'
        f'{T0},"voi\nce",hq,loss_pct,0.1\n'
        f"{T0},voice,hq,loss_pct,-2\n"
    )
    _, problems = read(path, vocab)
    assert [p.split(": ")[0] for p in problems] == ["m.csv:3:1", "m.csv:5:1"]


def test_site_and_context_must_agree(tmp_path: Path, vocab: Vocabulary) -> None:
    path = write_csv(
        tmp_path / "m.csv",
        [(T0, "voice", "hq", "branch", "loss_pct", 1), (T0, "voice", "", "", "loss_pct", 1)],
        header=("timestamp", "journey", "site", "context", "metric", "value"),
    )
    _, problems = read(path, vocab)
    assert "site hq is in context campus, not 'branch'" in problems[0]
    assert "m.csv:3:1: site: the sample has no site and no context" in problems[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "m.csv: the file is empty"),
        ("timestamp,journey,site,metric,value\n", "m.csv: the file holds no samples"),
        (
            "timestamp,journey,site,metrc,value\n",
            "m.csv:1:1: metrc: unknown column 'metrc'; hint: did you mean 'metric'?",
        ),
        ("timestamp,journey,metric,value\n", "missing column(s): site (or context)"),
        ("timestamp;journey;site;metric;value\n", "separate columns with commas"),
        (f"timestamp,journey,site,metric,value\n{T0},voice,hq\n", "m.csv:2:1: 3 fields where the header has 5"),
    ],
)
def test_broken_csv_files(tmp_path: Path, vocab: Vocabulary, text: str, expected: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    samples, problems = read(path, vocab)
    assert len(samples) == 0
    assert any(expected in p for p in problems), problems


def test_broken_json_files(tmp_path: Path, vocab: Vocabulary) -> None:
    (tmp_path / "a.json").write_text('{"samples": []}')
    (tmp_path / "b.json").write_text('[\n{"timestamp": 1,\n "journey": }\n]')
    (tmp_path / "c.json").write_text(
        f'[\n{{"timestamp": {T0}, "journey": "voice", "site": "hq", "metric": "loss_pct", "valu": 1}}\n]'
    )
    (tmp_path / "d.jsonl").write_text(
        f'{{"timestamp": {T0}, "journey": "voice", "site": "hq", "metric": "loss_pct", "value": true}}\n'
    )
    assert "a.json:1:1: a .json measurement file must be an array" in read(tmp_path / "a.json", vocab)[1][0]
    assert read(tmp_path / "b.json", vocab)[1][0].startswith("b.json:3:")
    assert (
        "c.json:2:1: valu: unknown field 'valu'; hint: did you mean 'value'?" in read(tmp_path / "c.json", vocab)[1][0]
    )
    assert "d.jsonl:1:1: value: 'true' is not a number" in read(tmp_path / "d.jsonl", vocab)[1][0]


def test_openmetrics_problems(tmp_path: Path, vocab: Vocabulary) -> None:
    path = tmp_path / "m.prom"
    path.write_text(
        'qoectl_loss_pct{journey="voice",site="hq"} 0.5\n'
        'qoectl_loss_pct{journey="voice" site="hq"} 0.5 1735689600\n'
        "this is not a sample\n"
        'qoectl_lost_pct{journey="voice",site="hq"} 0.5 1735689600\n'
    )
    _, problems = read(path, vocab)
    assert "m.prom:1:1: timestamp: sample without a timestamp" in problems[0]
    assert problems[1].startswith("m.prom:2:")
    assert "m.prom:3:1: not an OpenMetrics sample line" in problems[2]
    assert "m.prom:4:1: metric: unknown metric 'lost_pct'" in problems[3]


def test_unknown_extension_and_missing_file(tmp_path: Path, vocab: Vocabulary) -> None:
    assert "unknown measurement file type '.xlsx'" in read(tmp_path / "m.xlsx", vocab)[1][0]
    assert "no such file" in read(tmp_path / "gone.csv", vocab)[1][0]


def test_problem_count_is_capped_with_a_summary(tmp_path: Path, vocab: Vocabulary) -> None:
    rows = [(T0, "voice", "hq", "loss_pct", -1)] * 50
    _, problems = read(write_csv(tmp_path / "m.csv", rows), vocab)
    assert len(problems) == 21
    assert "30 more problem(s) in this source not shown" in problems[-1]


def test_concat_merges_session_tables(tmp_path: Path, vocab: Vocabulary) -> None:
    header = ("timestamp", "journey", "site", "metric", "value", "session", "position_s")
    a = write_csv(tmp_path / "a.csv", [(T0, "tv", "hq", "stall_s", 1, "x", 5)], header)
    b = write_csv(
        tmp_path / "b.csv", [(T0, "tv", "hq", "stall_s", 1, "y", 5), (T0, "tv", "hq", "stall_s", 2, "x", 9)], header
    )
    merged = SampleSet.concat([read(a, vocab)[0], read(b, vocab)[0]])
    assert [merged.sessions[i] for i in merged.session] == ["x", "y", "x"]


def test_feedback_csv(tmp_path: Path, vocab: Vocabulary) -> None:
    path = write_csv(
        tmp_path / "survey.csv",
        [
            ("voice", "hq", T0, 4, ""),
            ("voice", "hq", "2025-01-01T10:00:00+01:00", 9, "nps"),
            ("voice", "hq", T0, 6, "csat"),
            ("voise", "hq", T0, 3, "mos"),
            ("voice", "hq", NOW + 7200, 3, "mos"),
            ("voice", "branch-7", T0, 3, "mos"),
            ("voice", "hq", T0, 3, "stars"),
        ],
        header=("journey", "site", "time", "score", "kind"),
    )
    answers, diags = read_feedback(path, vocab, NOW)
    assert [(a.kind, a.score) for a in answers] == [("mos", 4.0), ("nps", 9.0)]
    assert answers[1].time == T0 + 9 * 3600
    text = [d.format() for d in diags]
    assert "survey.csv:4:1: score: csat score 6 is outside 1-5" in text[0]
    assert "survey.csv:5:1: journey: unknown journey 'voise'; hint: did you mean 'voice'?" in text[1]
    assert "survey.csv:6:1: time: time is in the future (clock skew?)" in text[2]
    assert "survey.csv:7:1: site: unknown site 'branch-7'" in text[3]
    assert "survey.csv:8:1: kind: unknown kind 'stars'" in text[4]


def test_metric_names_match_the_policy_language() -> None:
    import typing

    from controller.spec import v1

    assert typing.get_args(v1.VerifyMetric) == mt.NAMES
