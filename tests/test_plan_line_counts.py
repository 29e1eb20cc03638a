"""``qoectl plan`` counts added/removed lines without building a diff, and they are the diff's numbers.

:func:`~controller.render.outputs.line_counts` is checked against the lines of
:func:`difflib.unified_diff` itself (hypothesis: texts with lines that look like
diff headers, lines without a final newline, and files long enough for
difflib's "popular line" heuristic); the CLI test checks that a plan that
builds no diff (``--no-diff``, ``--format markdown``) reports the same counts
as the diffs in ``--json`` and the same table as a plan that prints them.
"""

from __future__ import annotations

import difflib
import json
import re
import tempfile
from pathlib import Path

from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.cli.main import cli
from controller.render.outputs import DiffSpool, compare_device, line_counts, unified
from tests.policy_builder import PolicyRepo, bulk_journey, device

LINES = st.sampled_from(
    ["a\n", "b\n", "c\n", "x y\n", "++ twice\n", "+++ b/file\n", "--- a/file\n", "-- comment\n", "\n", "!\n"]
)
LAST = st.sampled_from(["", "a", "tail", "---", "+"])  # a last line with no newline, or none


@st.composite
def texts(draw: st.DrawFn, max_lines: int = 60) -> str:
    lines = draw(st.lists(LINES, max_size=max_lines))
    return "".join(lines) + draw(LAST)


@st.composite
def edited(draw: st.DrawFn) -> tuple[str, str]:
    """A file and an edit of it (lines replaced, inserted, deleted), as a re-plan changes a config."""
    old = draw(texts(max_lines=draw(st.sampled_from([20, 300]))))
    lines = old.splitlines(keepends=True)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(lines)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        if op == "insert":
            lines[at:at] = draw(st.lists(LINES, min_size=1, max_size=5))
        elif op == "delete":
            del lines[at : at + draw(st.integers(1, 5))]
        else:
            lines[at : at + 1] = [draw(LINES)]
    return old, "".join(lines)


def diff_counts(old: str, new: str) -> tuple[int, int]:
    """+/- lines of difflib's unified diff, read from its hunks: each hunk header gives the lines on each side."""
    added = removed = 0
    hunk = re.compile(r"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
    context = 0
    body = list(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), "a", "b"))[2:]
    for line in body:
        m = hunk.fullmatch(line.rstrip("\n"))
        if m is not None:
            added += int(m[2] or 1)
            removed += int(m[1] or 1)
        elif line.startswith(" "):
            context += 1
    return added - context, removed - context


@settings(max_examples=400, deadline=None)
@given(st.one_of(edited(), st.tuples(texts(), texts())))
def test_line_counts_are_the_unified_diffs(pair: tuple[str, str]) -> None:
    old, new = pair
    expected = diff_counts(old, new)
    assert line_counts(old, new) == expected
    assert unified("f", "d", old, new)[1:] == expected
    assert len(old.splitlines()) - expected[1] + expected[0] == len(new.splitlines())


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a.cfg", "b.cfg"]), texts()),
    st.dictionaries(st.sampled_from(["a.cfg", "b.cfg"]), texts()),
)
def test_a_change_without_its_diff_is_the_same_change(old: dict[str, str], new: dict[str, str]) -> None:
    for before, after in ((old, new), (None, new), (old, None)):
        full = compare_device("r1", "linux", before, after)
        cheap = compare_device("r1", "linux", before, after, diff=False)
        assert cheap.status == full.status
        assert [(f.name, f.status, f.added, f.removed) for f in cheap.files] == [
            (f.name, f.status, f.added, f.removed) for f in full.files
        ]
        assert all(f.diff == "" for f in cheap.files)
        kept = [f for f in full.files if f.status in ("changed", "unchanged")]
        assert [f.status == "unchanged" for f in kept] == [f.diff == "" for f in kept]
        with tempfile.TemporaryDirectory() as folder:  # the diff text on disk, read back: the same change
            spooled = compare_device("r1", "linux", before, after, spool=DiffSpool(Path(folder)))
            assert [(f.name, f.status, f.added, f.removed, f.diff_text()) for f in spooled.files] == [
                (f.name, f.status, f.added, f.removed, f.diff) for f in full.files
            ]
            assert all(f.diff == "" and (f.spooled is not None) == bool(f.diff_text()) for f in spooled.files)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_plans_without_diffs_report_the_diffs_counts(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    base = tmp_path / "deployed"
    assert run("plan", repo.write(tmp_path / "p0"), "--out", base, "--no-diff").exit_code == 2
    edited_repo = repo.copy().add_journey(bulk_journey("backup"))
    edited_repo.set_devices([*repo.devices()[1:], device("br2-rtr1", "linux", "branch-1")])
    policy = edited_repo.write(tmp_path / "p1")
    shown = run("plan", policy, "--out", tmp_path / "o1", "--baseline", base, "--json")
    assert shown.exit_code == 2, shown.output
    devices = json.loads(shown.stdout)["devices"]
    assert {d["status"] for d in devices} == {"new", "changed", "removed"}
    for d in devices:  # the counts in the JSON are those of the diffs beside them
        body = [line for f in d["files"].values() for line in f["diff"].splitlines(keepends=True)[2:]]
        assert (d["added"], d["removed"]) == (
            sum(line.startswith("+") for line in body),
            sum(line.startswith("-") for line in body),
        )
    quiet = run("plan", policy, "--out", tmp_path / "o3", "--baseline", base, "--json", "--no-diff")
    assert quiet.exit_code == 2
    without = json.loads(quiet.stdout.replace(str(tmp_path / "o3"), str(tmp_path / "o1")))
    assert all(f["diff"] == "" for d in without["devices"] for f in d["files"].values())  # no diff anywhere
    for d in devices:
        for f in d["files"].values():
            f["diff"] = ""
    assert without == {**json.loads(shown.stdout), "devices": devices}  # everything else the same
    markdown = run("plan", policy, "--out", tmp_path / "o2", "--baseline", base, "--format", "markdown")
    assert markdown.exit_code == 2
    rows = {cells[0]: (int(cells[3]), int(cells[4])) for cells in _md_rows(markdown.stdout)}
    assert rows == {d["device"]: (d["added"], d["removed"]) for d in devices}
    tables = {}
    for flag in ("--diff", "--no-diff"):
        out = tmp_path / f"o{flag}"
        result = run("plan", policy, "--out", out, "--baseline", base, flag)
        assert result.exit_code == 2
        tables[flag] = result.stdout.replace(str(out), "OUT")
    assert tables["--diff"].endswith(tables["--no-diff"])  # the same table, after the diffs
    assert len(tables["--diff"]) > len(tables["--no-diff"])


def _md_rows(text: str) -> list[list[str]]:
    """The rows of the device table (the budget table's rows have no status)."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    return [row for row in rows if len(row) == 6 and row[2] in ("new", "changed", "removed", "unchanged")]
