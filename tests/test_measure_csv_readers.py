"""Every CSV reader gives the samples and the problems (file:line) of the exact one, on generated files.

The exact reader is :func:`controller.measure.files.read_csv_module` (Python's csv module). The faster
ones, each tried by :func:`~controller.measure.files.read_csv` before it, may only be quicker ways to the
same result:

* :func:`~controller.measure.files.read_csv_split`: plain files (no quote) split in bulk, every problem
  named with its line; it declines (``None``) empty and quoted files;
* :func:`controller.measure.fastcsv.read_path` (pyarrow), as one table and streamed in small blocks: it
  reports nothing, so it may only take a file the exact reader reads without a single problem.

Files are generated with good rows of every kind, bad rows (wrong field counts, bad numbers, unknown
or missing names, out-of-range values, bytes that are not UTF-8), blank lines, quoted fields (commas,
doubled quotes and line breaks inside quotes), reordered, aliased, missing, unknown and repeated
columns, LF and CRLF line ends (mixed too, and lone carriage returns), with and without the final one,
and empty files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from controller.measure import fastcsv
from controller.measure.files import read_csv, read_csv_module, read_csv_split
from controller.measure.samples import Problems, SampleSet, Vocabulary
from tests.verify_support import T0, assert_same_samples, policy_build

NOW = T0 + 86400
COLUMNS = ("timestamp", "journey", "site", "context", "metric", "value", "session", "position_s")
GOOD = (  # timestamp, journey, site, context, metric, value, session, position_s
    ("{t}", "voice", "hq", "", "one_way_delay_ms", "{v}", "", ""),
    ("{t}", "voice", "branch-1", "branch", "loss_pct", "0.{k}", "", ""),
    ("{t}", "web", "", "branch", "response_time_ms", "1{k}0.5", "", ""),
    ("{t}", "tv", "hq", "", "session_duration_s", "120", "s{k}", ""),
    ("{t}", "tv", "branch-2", "", "stall_s", "2.5", "s{k}", "{k}.25"),
    ("{t}", "voice", "hq", "campus", "dscp", "46", "", ""),
    ("{t}", "backups", "branch-2", "", "throughput_kbps", "1e3", "", ""),
)
BAD_FIELDS = {  # a field -> texts that make a row bad (or, quoted, good again)
    0: ("", "x", "12", "2025-01-01T00:05:00Z", f"{NOW + 7200:.0f}", f"{T0 * 1000:.0f}", " 1735689600"),
    1: ("", "voise", "Voice", "tv"),
    2: ("", "branch-9", " hq", "branch-1", "h\udcffq"),  # \udcff: the byte 0xff, not UTF-8
    3: ("mars", "branch", "campus"),
    4: ("los_pct", "", "stall_s"),
    5: ("", "nan", "-4", "1e400", "lots", "101", "46.5", "1_0", " 2 ", "1\udcff"),
    6: ("", "s1", "a,b"),
    7: ("", "-4", "late", "3"),
}
ALIASES = {"journey": ("journey", "flow", "Journey"), "timestamp": ("timestamp", "ts", "time", " TS ")}


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Vocabulary:
    return Vocabulary(policy_build(tmp_path_factory.mktemp("policy")).policy)


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A measurement CSV file: mostly plausible, with the mistakes people make."""
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([b"", b"\n", b"\r\n", b" \n"]))
    every = draw(st.booleans())  # every column, or some: rows then miss what their kind needs
    wanted = [c for c in COLUMNS if every or c in ("timestamp", "journey", "metric", "value") or draw(st.booleans())]
    if "site" not in wanted and "context" not in wanted and draw(st.integers(0, 5)):
        wanted.append("site")
    order = draw(st.permutations(wanted))
    header = [draw(st.sampled_from(ALIASES.get(c, (c,)))) for c in order]
    header_damage = draw(st.integers(0, 25))
    if header_damage == 0:
        header.append(draw(st.sampled_from(["metrics", "site", "x", "sit\udcffe"])))  # unknown or repeated column
    elif header_damage == 1:
        header = [";".join(header)]
    quoting = draw(st.sampled_from(["none", "none", "none", "some rows", "every field"]))
    mistakes = draw(st.sampled_from([0, 0, 5, 30]))  # percent of the rows that get a mistake
    rows: list[str] = [",".join(_quote(h) if quoting == "every field" else h for h in header)]
    for k in range(draw(st.integers(0, 24))):
        fields = [f.format(t=f"{T0 + 7.5 * k:.3f}", v=20 + k % 9, k=k % 7) for f in draw(st.sampled_from(GOOD))]
        by_name = dict(zip(COLUMNS, fields, strict=True))
        damage = draw(st.integers(0, 4)) if draw(st.integers(0, 99)) < mistakes else None
        if damage == 0:
            index = draw(st.integers(0, 7))
            by_name[COLUMNS[index]] = draw(st.sampled_from(BAD_FIELDS[index]))
        out = [by_name[c] for c in order]
        if damage == 1:
            out = out[: draw(st.integers(0, len(out)))] if draw(st.booleans()) else [*out, "x"]
        quoted = quoting == "every field" or (quoting == "some rows" and draw(st.booleans()))
        if damage == 2 and out and quoting != "none":  # a line break inside a quoted field
            out[0] = _quote(out[0][:2] + "\n" + out[0][2:])
        text = ",".join(_quote(f) if quoted else f for f in out)
        if damage == 3:
            text = draw(st.sampled_from(["", " ", "  ", ",,,", "\r"]))
        rows.append(text)
    end = draw(st.sampled_from(["\n", "\r\n"]))
    body = end.join(rows) + (end if draw(st.booleans()) else "")
    if draw(st.integers(0, 12)) == 0:
        body = body.replace(end, "\n", 1) if end == "\r\n" else body.replace("\n", "\r\n", 1)  # mixed line ends
    return body.encode("utf-8", "surrogateescape")


def _read(reader: object, path: Path, vocab: Vocabulary) -> tuple[SampleSet | None, list[str]]:
    problems = Problems(path.name)
    samples = reader(path, vocab, NOW, problems)  # type: ignore[operator]
    return samples, [d.format() for d in problems.diagnostics()]


def _header(data: bytes) -> tuple[dict[str, int] | None, bool]:
    from controller.measure.files import _header as parse_header

    head = data.split(b"\n", 1)[0]
    crlf = head.endswith(b"\r")
    columns = parse_header(head.rstrip(b"\r").decode("utf-8", "replace").split(","), "m.csv", Problems("m.csv"))
    return columns, crlf


@settings(
    max_examples=1000, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=csv_files())
def test_every_csv_reader_agrees_with_the_exact_one(tmp_path: Path, vocab: Vocabulary, data: bytes) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(data)
    exact, exact_diags = _read(read_csv_module, path, vocab)
    assert exact is not None

    split, split_diags = _read(read_csv_split, path, vocab)
    if split is None:
        lone_cr = data.count(b"\r") != data.count(b"\r\n")  # the csv module ends a record there
        assert split_diags == [] and (not data or b'"' in data or lone_cr), "declined a file it should read"
    else:
        assert split_diags == exact_diags
        assert_same_samples(split, exact)

    event("split reader: " + ("declined" if split is None else "problems" if split_diags else "clean"))
    event("exact reader: " + ("problems" if exact_diags else "clean") + (", samples" if len(exact) else ""))

    default, default_diags = _read(read_csv, path, vocab)
    assert default is not None
    assert default_diags == exact_diags
    assert_same_samples(default, exact)

    if not fastcsv.available() or not data or b'"' in data:
        return
    columns, crlf = _header(data)
    if columns is None:
        return
    whole = fastcsv.read_path(path, columns, crlf, vocab, NOW)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastcsv, "WHOLE_BYTES", 0)
        patch.setattr(fastcsv, "BLOCK_BYTES", 128)
        patch.setattr(fastcsv, "SCAN_BYTES", 7)
        streamed = fastcsv.read_path(path, columns, crlf, vocab, NOW)
    for fast in (whole, streamed):
        if fast is not None:
            assert exact_diags == [], "the pyarrow reader took a file the exact reader finds problems in"
            assert_same_samples(fast, exact)
    assert (whole is None) == (streamed is None)
    event("pyarrow reader: " + ("declined" if whole is None else "took it"))
    uniform = data.count(b"\r") == 0 or data.count(b"\r") == data.count(b"\r\n") == data.count(b"\n")
    if exact_diags == [] and len(exact) and uniform:
        blank = any(not line.strip(b"\r") for line in data.split(b"\n")[1:-1]) or data.endswith(b"\n\n")
        if not blank:
            assert whole is not None, "a clean plain file must take the pyarrow reader"
