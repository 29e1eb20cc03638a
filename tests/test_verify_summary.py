"""``qoectl verify`` on a large result: the terminal summary agrees with the full table in --json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from bench import verify_bench
from controller.cli.main import cli
from controller.evaluate.report import SUMMARY_ROWS

ROW = re.compile(r"^│\s*(\d+) │ (\S+)\s*│ (\S+)\s*│ (\w+)\s*│")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["verify", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout


def _fleet(tmp_path: Path) -> list[str]:
    verify_bench.write_policy(tmp_path / "policy")
    verify_bench.write_samples(tmp_path / "samples.csv", 10_000)  # 2 samples per journey x site
    args = ["--policies", str(tmp_path / "policy"), "--measurements", str(tmp_path / "samples.csv")]
    return args + ["--journey", "j00-voice", "--journey", "j01-interactive", "--journey", "j02-streaming"]


def test_large_result_prints_the_worst_rows_and_counts_recomputed_from_json(tmp_path: Path) -> None:
    args = _fleet(tmp_path)
    code_json, text = _run(*args, "--json")
    data = json.loads(text)
    results = data["results"]
    assert len(results) == 3 * verify_bench.SITES > SUMMARY_ROWS
    code, out = _run(*args)
    assert code == code_json == data["exit_code"]
    shown = [m.groups() for m in map(ROW.match, out.splitlines()) if m]
    measured = [r for r in results if r["samples"]]
    worst = [r for r in measured if r["status"] != "pass"][:SUMMARY_ROWS]
    assert {r["status"] for r in worst} == {"fail", "unknown"}  # the file makes both kinds
    expected = [(str(r["rank"]), r["journey"], r["segment"]["site"], r["status"]) for r in worst]
    assert shown == expected
    statuses = [s[3] for s in shown]
    assert statuses == sorted(statuses, key=["fail", "unknown"].index)  # out of target first, then unknown
    for verdict in ("fail", "unknown", "pass"):
        mine = [r for r in results if r["status"] == verdict]
        journeys = len({r["journey"] for r in mine})
        assert re.search(rf"│ {verdict}\s*│\s*{len(mine)} │\s*{journeys} │", out), verdict
        assert data["summary"][verdict] == len(mine)
    assert f"showing {len(worst)} of {len(measured)} measured results" in out
    assert "--json, --html and --junit" in out


def test_all_rows_prints_every_result_in_the_json_order(tmp_path: Path) -> None:
    args = _fleet(tmp_path)
    data = json.loads(_run(*args, "--json")[1])
    code, out = _run(*args, "--all-rows")
    assert code == data["exit_code"]
    shown = [m.groups() for m in map(ROW.match, out.splitlines()) if m]
    measured = [r for r in data["results"] if r["samples"]]
    assert shown == [(str(r["rank"]), r["journey"], r["segment"]["site"], r["status"]) for r in measured]
    assert "showing" not in out
