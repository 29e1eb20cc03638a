"""The pyarrow fast path for plain CSV: it reads clean files exactly as the exact reader does, and declines the rest.

Every test compares the two paths of :func:`controller.measure.files.read_csv` on the same file: the fast
path may only ever be a quicker way to the same samples, and any file it declines must give the exact
reader's diagnostics, with their file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.measure import fastcsv
from controller.measure.files import read_csv
from controller.measure.samples import Problems, SampleSet, Vocabulary
from controller.pipeline import Build
from tests.verify_support import T0, assert_same_samples, policy_build

pytest.importorskip("pyarrow")  # the fast path is optional; without pyarrow only the exact reader runs

NOW = T0 + 86400
HEADER = "timestamp,journey,site,context,metric,value,session,position_s"
KINDS = (
    "{ts},voice,hq,,one_way_delay_ms,{k7},,",
    "{ts},voice,branch-1,branch,loss_pct,0.{k7},,",
    "{ts},web,,branch,response_time_ms,1{k7}0.5,,",
    "{ts},tv,hq,,session_duration_s,120,s{s},",
    "{ts},tv,hq,,stall_s,2.5,s{s},{k7}.25",
    "{ts},tv,branch-2,,startup_s,1.5,s{s},",
    "{ts},voice,hq,campus,dscp,46,,",
    "{ts},backups,branch-2,,throughput_kbps,1e3,,",
)


@pytest.fixture(scope="module")
def lab_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return policy_build(tmp_path_factory.mktemp("policy"))


@pytest.fixture(scope="module")
def vocab(lab_build: Build) -> Vocabulary:
    return Vocabulary(lab_build.policy)


def clean_lines(rows: int = 64) -> list[str]:
    """Rows of every kind: sites, contexts, sessions with stalls and positions, whole and decimal numbers."""
    out = [HEADER]
    for k in range(rows):
        kind = KINDS[k % len(KINDS)]
        out.append(kind.format(ts=f"{T0 + 7.5 * k:.3f}", k7=k % 7, s=(k * 7919) % 97))
    return out


def write(path: Path, lines: list[str], end: str = "\n", final: bool = True) -> Path:
    path.write_bytes((end.join(lines) + (end if final else "")).encode("utf-8", "surrogateescape"))
    return path


def exact(path: Path, vocab: Vocabulary) -> tuple[SampleSet, list[str]]:
    problems = Problems(path.name)
    samples = read_csv(path, vocab, NOW, problems, fast=False)
    return samples, [d.format() for d in problems.diagnostics()]


def default(path: Path, vocab: Vocabulary) -> tuple[SampleSet, list[str]]:
    problems = Problems(path.name)
    samples = read_csv(path, vocab, NOW, problems)
    return samples, [d.format() for d in problems.diagnostics()]


def fast_only(path: Path, vocab: Vocabulary) -> SampleSet | None:
    data = path.read_bytes()
    head = data.split(b"\n", 1)[0]
    columns = {name: i for i, name in enumerate(head.rstrip(b"\r").decode().split(","))}
    aliases = {"flow": "journey", "ts": "timestamp"}
    columns = {aliases.get(name, name): i for name, i in columns.items()}
    return fastcsv.read_path(path, columns, head.endswith(b"\r"), vocab, NOW)


# --------------------------------------------------------------------------- files the fast path takes


@pytest.mark.parametrize(
    ("variant", "edit"),
    [
        ("LF", lambda lines: (lines, "\n", True)),
        ("CRLF", lambda lines: (lines, "\r\n", True)),
        ("no final line end", lambda lines: (lines, "\n", False)),
        ("CRLF, no final line end", lambda lines: (lines, "\r\n", False)),
        ("spaces around numbers", lambda lines: ([lines[0]] + [" " + x for x in lines[1:]], "\n", True)),
    ],
)
def test_clean_plain_files_take_the_fast_path_with_the_same_samples(
    tmp_path: Path, vocab: Vocabulary, variant: str, edit: Callable[[list[str]], tuple[list[str], str, bool]]
) -> None:
    lines, end, final = edit(clean_lines())
    path = write(tmp_path / "m.csv", lines, end, final)
    fast = fast_only(path, vocab)
    assert fast is not None, f"{variant}: a clean plain file must take the fast path"
    slow, problems = exact(path, vocab)
    assert problems == []
    assert_same_samples(fast, slow)
    got, diags = default(path, vocab)
    assert diags == [] and len(got) == len(lines) - 1
    assert_same_samples(got, slow)


def test_reordered_and_aliased_columns(tmp_path: Path, vocab: Vocabulary) -> None:
    lines = ["metric,value,ts,flow,site"] + [
        f"one_way_delay_ms,{20 + k % 5},{T0 + k},voice,{('hq', 'branch-1')[k % 2]}" for k in range(40)
    ]
    path = write(tmp_path / "m.csv", lines)
    fast = fast_only(path, vocab)
    assert fast is not None
    assert_same_samples(fast, exact(path, vocab)[0])


def test_sessions_are_numbered_by_first_appearance_across_arrow_blocks(tmp_path: Path, vocab: Vocabulary) -> None:
    # about 2.5 MB: pyarrow reads it in several blocks, each with its own dictionary of session ids
    sites = ("hq", "branch-1", "branch-2")
    lines = [HEADER] + [
        f"{T0 + k * 0.01:.3f},tv,{sites[k % 3]},,stall_s,1.5,sess-{(k * 37) % 5003:05d},{k % 60}" for k in range(36_000)
    ]
    path = write(tmp_path / "m.csv", lines)
    fast = fast_only(path, vocab)
    assert fast is not None
    slow, problems = exact(path, vocab)
    assert problems == []
    assert_same_samples(fast, slow)
    assert fast.sessions[:3] == ("sess-00000", "sess-00037", "sess-00074")


# --------------------------------------------------------------------------- files it declines


def _replace(row: int, new: str) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        out = list(lines)
        out[row] = new
        return out

    return edit


def _insert(row: int, new: str) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        return [*lines[:row], new, *lines[row:]]

    return edit


DECLINED: list[tuple[str, Callable[[list[str]], list[str]], str | None]] = [
    ("quoted field", _replace(3, f'{T0},"voice",hq,,loss_pct,0.1,,'), None),
    ("quoted field over two lines", _replace(3, f'{T0},"voi\nce",hq,,loss_pct,0.1,,'), "m.csv:4:1: journey"),
    ("blank line", _insert(5, ""), None),
    (
        "blank line, then a bad row",
        lambda x: _insert(5, "   ")(_replace(9, f"{T0},voice,hq,,one_way_delay_ms,-2,,")(x)),
        "m.csv:11:1: value: negative one-way delay",
    ),
    (  # the csv module ends a record at a lone carriage return
        "carriage return inside a line",
        _replace(4, f"{T0},voice,hq,\r,loss_pct,0.1,,"),
        "m.csv:5:1: 4 fields where the header has 8",
    ),
    ("CRLF line end on one line only", _replace(4, f"{T0},voice,hq,,loss_pct,0.1,,\r"), None),
    ("ISO 8601 timestamp", _replace(6, "2025-01-01T00:05:00Z,voice,hq,,loss_pct,0.1,,"), None),
    ("empty value", _replace(6, f"{T0},voice,hq,,loss_pct,,,"), "m.csv:7:1: value: value is missing"),
    ("empty timestamp", _replace(6, ",voice,hq,,loss_pct,1,,"), "m.csv:7:1: timestamp: timestamp is missing"),
    (
        "value that is no number",
        _replace(6, f"{T0},voice,hq,,loss_pct,lots,,"),
        "m.csv:7:1: value: 'lots' is not a number",
    ),
    (
        "nan(1), which pyarrow reads",
        _replace(6, f"{T0},voice,hq,,loss_pct,nan(1),,"),
        "m.csv:7:1: value: 'nan(1)' is not a number",
    ),
    ("nan", _replace(6, f"{T0},voice,hq,,loss_pct,nan,,"), "m.csv:7:1: value: loss_pct nan is not a finite number"),
    ("digits with underscores", _replace(6, f"{T0:.0f}".replace("17", "1_7") + ",voice,hq,,loss_pct,1,,"), None),
    ("unknown journey", _replace(8, f"{T0},voise,hq,,loss_pct,1,,"), "m.csv:9:1: journey: unknown journey 'voise'"),
    ("missing journey", _replace(8, f"{T0},,hq,,loss_pct,1,,"), "m.csv:9:1: journey: journey is missing"),
    ("unknown metric", _replace(8, f"{T0},voice,hq,,los_pct,1,,"), "m.csv:9:1: metric: unknown metric 'los_pct'"),
    ("unknown site", _replace(8, f"{T0},voice,branch-9,,loss_pct,1,,"), "m.csv:9:1: site: unknown site 'branch-9'"),
    ("unknown context", _replace(8, f"{T0},voice,,mars,loss_pct,1,,"), "m.csv:9:1: context: unknown context 'mars'"),
    (
        "no site and no context",
        _replace(8, f"{T0},voice,,,loss_pct,1,,"),
        "m.csv:9:1: site: the sample has no site and no context",
    ),
    (
        "site and context disagree",
        _replace(8, f"{T0},voice,hq,branch,loss_pct,1,,"),
        "m.csv:9:1: context: site hq is in context campus",
    ),
    ("space in a name", _replace(8, f"{T0},voice, hq,,loss_pct,1,,"), "m.csv:9:1: site: unknown site ' hq'"),
    (
        "negative one-way delay",
        _replace(10, f"{T0},voice,hq,,one_way_delay_ms,-3.5,,"),
        "m.csv:11:1: value: negative one-way delay -3.5 ms",
    ),
    (
        "value out of range",
        _replace(10, f"{T0},voice,hq,,loss_pct,101,,"),
        "m.csv:11:1: value: loss_pct 101 is above 100",
    ),
    ("fractional DSCP", _replace(10, f"{T0},voice,hq,,dscp,46.5,,"), "m.csv:11:1: value: dscp must be a whole number"),
    (
        "clock skew",
        _replace(10, f"{NOW + 3600},voice,hq,,loss_pct,1,,"),
        "m.csv:11:1: timestamp: timestamp is 3600 s in the future",
    ),
    (
        "milliseconds",
        _replace(10, f"{T0 * 1000:.0f},voice,hq,,loss_pct,1,,"),
        "m.csv:11:1: timestamp: timestamp 1735689600000 looks like milliseconds",
    ),
    (
        "before 2000",
        _replace(10, "12,voice,hq,,loss_pct,1,,"),
        "m.csv:11:1: timestamp: timestamp 12 is before the year 2000",
    ),
    (
        "stall without a session",
        _replace(12, f"{T0},tv,hq,,stall_s,2,,5"),
        "m.csv:13:1: session: a stall_s sample needs a session",
    ),
    (
        "stall without a position",
        _replace(12, f"{T0},tv,hq,,stall_s,2,s1,"),
        "m.csv:13:1: position_s: a stall_s sample needs",
    ),
    (
        "negative position",
        _replace(12, f"{T0},tv,hq,,stall_s,2,s1,-4"),
        "m.csv:13:1: position_s: position_s -4.0 must not be negative",
    ),
    (
        "position that is no number",
        _replace(12, f"{T0},tv,hq,,stall_s,2,s1,late"),
        "m.csv:13:1: position_s: 'late' is not a number",
    ),
    ("too few fields", _replace(14, f"{T0},voice,hq"), "m.csv:15:1: 3 fields where the header has 8"),
    ("too many fields", _replace(14, f"{T0},voice,hq,,loss_pct,1,,,x"), "m.csv:15:1: 9 fields where the header has 8"),
    ("not UTF-8", _replace(14, f"{T0},voice,h\udcffq,,loss_pct,1,,"), "m.csv:15:1: site: unknown site 'h\ufffdq'"),
    ("header only", lambda lines: lines[:1], "m.csv: the file holds no samples"),
]


@pytest.mark.parametrize(("variant", "edit", "expected"), DECLINED, ids=[d[0] for d in DECLINED])
def test_files_the_fast_path_declines_get_the_exact_readers_diagnostics(
    tmp_path: Path, vocab: Vocabulary, variant: str, edit: Callable[[list[str]], list[str]], expected: str | None
) -> None:
    path = write(tmp_path / "m.csv", edit(clean_lines()))
    assert fast_only(path, vocab) is None, f"{variant}: the fast path must decline"
    slow, slow_diags = exact(path, vocab)
    got, diags = default(path, vocab)
    assert_same_samples(got, slow)
    assert diags == slow_diags
    if expected is None:
        assert diags == [], "nothing wrong with it: the exact reader reads it as well"
    elif expected.startswith("m.csv: "):  # a file-level problem, reported by FileSource
        assert len(got) == 0
    else:
        assert any(expected in d for d in diags), diags
        assert len(got) == len(clean_lines()) - 2, "the bad row is left out, the others kept"


def test_without_pyarrow_every_file_takes_the_exact_reader(
    tmp_path: Path, vocab: Vocabulary, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "m.csv", clean_lines())
    with_arrow = default(path, vocab)[0]
    monkeypatch.setattr(fastcsv, "_arrow", lambda: None)
    assert not fastcsv.available()
    assert fast_only(path, vocab) is None
    samples, diags = default(path, vocab)
    assert diags == []
    assert_same_samples(samples, with_arrow)


# --------------------------------------------------------------------------- numbers


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(alphabet="0123456789.eE+-_ \tinfatyINFA()x", min_size=1, max_size=9))
def test_any_number_the_fast_path_accepts_reads_the_same_on_the_exact_path(
    tmp_path_factory: pytest.TempPathFactory, vocab: Vocabulary, text: str
) -> None:
    path = write(
        tmp_path_factory.mktemp("n") / "m.csv", [HEADER, f"{T0},voice,hq,,loss_pct,{text},,"] + clean_lines()[1:9]
    )
    fast = fast_only(path, vocab)
    slow, problems = exact(path, vocab)
    if fast is not None:
        assert problems == [], f"{text!r} was accepted by the fast path but not by the exact one"
        assert_same_samples(fast, slow)
    assert default(path, vocab)[1] == problems


# --------------------------------------------------------------------------- streamed in batches

BAD_FIELDS = ("", "x", "nan", "-4", "1e400", "unknown-site", "hq", "campus")


@settings(max_examples=120, derandomize=True, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(KINDS) * 40 - 1), min_size=1, max_size=120),
    damage=st.lists(st.tuples(st.integers(0, 119), st.integers(0, 7), st.sampled_from(BAD_FIELDS)), max_size=3),
    end=st.sampled_from(["\n", "\r\n"]),
    final=st.booleans(),
    scan_bytes=st.integers(1, 64),
)
def test_the_streamed_reader_agrees_with_the_exact_one_on_generated_files(
    tmp_path_factory: pytest.TempPathFactory,
    vocab: Vocabulary,
    picks: list[int],
    damage: list[tuple[int, int, str]],
    end: str,
    final: bool,
    scan_bytes: int,
) -> None:
    """Small Arrow blocks (many batches: sessions numbered across them) and scans that split CRLF pairs."""
    lines = clean_lines(len(KINDS) * 40)
    rows = [HEADER] + [lines[1 + k] for k in picks]
    for row, field, text in damage:
        if row < len(rows) - 1:
            fields = rows[1 + row].split(",")
            fields[field] = text
            rows[1 + row] = ",".join(fields)
    path = write(tmp_path_factory.mktemp("s") / "m.csv", rows, end, final)
    slow, slow_diags = exact(path, vocab)
    columns = {name: i for i, name in enumerate(HEADER.split(","))}
    got, diags = default(path, vocab)  # a small file: parsed as one table
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastcsv, "WHOLE_BYTES", 0)
        patch.setattr(fastcsv, "BLOCK_BYTES", 256)
        patch.setattr(fastcsv, "SCAN_BYTES", scan_bytes)
        streamed = fastcsv.read_path(path, columns, end == "\r\n", vocab, NOW)
    assert diags == slow_diags
    assert_same_samples(got, slow)
    if not damage:
        assert streamed is not None, "a clean plain file must take the streamed fast path"
    if streamed is not None:
        assert slow_diags == []
        assert_same_samples(streamed, slow)
