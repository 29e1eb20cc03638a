"""``qoectl verify``, ``qoectl qoe apdex`` and ``qoectl qoe stalls`` as a user runs them."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner, Result

from controller.cli.main import cli
from tests.verify_support import T0, make_policy, voice_rows, write_csv


def qoectl(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def verify_args(tmp_path: Path, rows: list[tuple[object, ...]]) -> list[str]:
    policy = make_policy(tmp_path / "policies")
    return ["verify", "--policies", str(policy), "--measurements", str(write_csv(tmp_path / "m.csv", rows))]


def test_exit_codes_pass_fail_unknown(tmp_path: Path) -> None:
    good = voice_rows("hq", 25, 1, 0) + voice_rows("branch-1", 30, 2, 0.1) + voice_rows("branch-2", 35, 2, 0.1)
    assert qoectl(*verify_args(tmp_path, good), "--journey", "voice").exit_code == 0
    bad = good + voice_rows("branch-2", 400, 30, 8)
    assert qoectl(*verify_args(tmp_path, bad), "--journey", "voice").exit_code == 1
    partial = voice_rows("hq", 25, 1, 0)
    result = qoectl(*verify_args(tmp_path, partial), "--journey", "voice")
    assert result.exit_code == 3
    assert "unknown: voice: no measurements at branch-1, branch-2" in result.stdout


def test_table_output_names_the_problem(tmp_path: Path) -> None:
    rows = voice_rows("branch-2", 180, 5, 3) + voice_rows("hq", 25, 1, 0) + voice_rows("branch-1", 30, 2, 0.1)
    result = qoectl(*verify_args(tmp_path, rows), "--journey", "voice")
    assert result.exit_code == 1
    assert "voice @ branch-2: secondary: loss_pct 3.00 % misses <= 0.26 %" in result.stdout
    assert re.search(r"fail: 1 out of target, 0 unknown, 2 in target", result.stdout)


def test_bad_measurement_data_stops_with_file_and_line(tmp_path: Path) -> None:
    rows = [*voice_rows("hq", 25, 1, 0, minutes=1), (T0, "voice", "hq", "one_way_delay_ms", -4)]
    result = qoectl(*verify_args(tmp_path, rows), "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    problem = data["diagnostics"][0]
    assert problem["file"].endswith("m.csv") and problem["line"] == 5 and problem["field"] == "value"
    assert "clock skew" in problem["message"]
    text = qoectl(*verify_args(tmp_path, rows))
    assert "m.csv:5:1: value: negative one-way delay -4 ms" in text.stderr
    assert "nothing was evaluated" in text.stderr


def test_usage_errors(tmp_path: Path) -> None:
    policy = make_policy(tmp_path / "p")
    assert "give --measurements FILE, --prometheus URL" in qoectl("verify", "--policies", str(policy)).output
    bad_since = qoectl("verify", "--policies", str(policy), "--measurements", "x.csv", "--since", "5 minutes")
    assert bad_since.exit_code == 2 and "is not a duration" in bad_since.output
    bad_url = qoectl("verify", "--policies", str(policy), "--prometheus", "file:///etc/passwd")
    assert bad_url.exit_code == 2 and "http://host:port" in bad_url.output


def test_junit_and_html_reports(tmp_path: Path) -> None:
    rows = voice_rows("branch-2", 180, 5, 3) + voice_rows("branch-1", 30, 2, 0.1)
    rows += [(T0 + i, "web", "hq", "response_time_ms", 100 + 10 * i) for i in range(40)]
    junit, page = tmp_path / "out" / "junit.xml", tmp_path / "out" / "report.html"
    result = qoectl(*verify_args(tmp_path, rows), "--junit", str(junit), "--html", str(page), "--json")
    data = json.loads(result.stdout)
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    assert len(cases) == len(data["results"]) == int(root.get("tests") or 0)
    assert root.get("failures") == str(data["summary"]["fail"])
    assert root.get("skipped") == str(data["summary"]["unknown"])
    names = {c.get("name") for c in cases}
    assert {"voice @ branch-2", "web @ hq"} <= names
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 2  # voice and web have values to plot
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "target &gt;= 4.00" in html and "branch-2 (fail)" in html


def test_qoe_apdex_cli(tmp_path: Path) -> None:
    samples = tmp_path / "rt.txt"
    samples.write_text("# response times\n100\n500\n501\n2000\n2001\nerror\n\n")
    result = qoectl("qoe", "apdex", "--threshold-ms", "500", "--samples-file", str(samples), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["apdex"] == 0.5 and data["rating"] == "poor" and data["total"] == 6
    ignored = json.loads(
        qoectl(
            "qoe", "apdex", "--threshold-ms", "500", "--samples-file", str(samples), "--errors-ignored", "--json"
        ).stdout
    )
    assert ignored["apdex"] == 0.6
    samples.write_text("100\nfast\n-3\n")
    bad = qoectl("qoe", "apdex", "--threshold-ms", "500", "--samples-file", str(samples))
    assert bad.exit_code == 1
    assert "rt.txt:2:1: 'fast' is not a response time; hint:" in bad.stderr
    assert "rt.txt:3:1: '-3' is not a response time" in bad.stderr
    assert "Traceback" not in bad.output


def test_qoe_stalls_cli() -> None:
    result = qoectl("qoe", "stalls", "--duration-s", "60", "--stall", "0:2", "--stall", "30:3", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert 1 <= data["stall_score"] <= 5 and data["stalls"] == 2
    clean = json.loads(qoectl("qoe", "stalls", "--duration-s", "60", "--json").stdout)
    assert clean["stall_score"] == 5.0
    over = qoectl("qoe", "stalls", "--duration-s", "60", "--stall", "30:3", "--max-rebuffering-pct", "1")
    assert over.exit_code == 1 and "rebuffering_pct: 4.7619 over (max 1)" in over.stdout
    bad = qoectl("qoe", "stalls", "--duration-s", "60", "--stall", "30-3")
    assert bad.exit_code == 1 and "--stall: '30-3' is not POSITION:LENGTH" in bad.stderr
