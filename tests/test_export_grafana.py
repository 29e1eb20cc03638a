"""``qoectl export grafana-dashboard``: the dashboard model's required fields, and queries a real Prometheus answers.

The required fields are those of Grafana's classic dashboard model
(``kinds/dashboard/dashboard_kind.cue`` in grafana/grafana: a dashboard has
``schemaVersion``, ``editable``, ``graphTooltip``; a panel ``type``,
``options``, ``fieldConfig`` {``defaults``, ``overrides``} and
``transformations``; a row ``id``, ``collapsed`` and ``panels``; a grid
position ``0 < w <= 24``, ``0 <= x < 24``, ``h > 0``, ``y >= 0``; a variable
``type``, ``name`` and ``hide``). Panel queries may name only series the
exported rule file records; and a real Prometheus server (Debian
``prometheus``), scraping a live endpoint and evaluating the exported rules,
answers every one of them with data, and fires for a segment losing 5 % of
its voice packets the alerts ``qoectl verify --prometheus`` reports from the
same server, and none for the segment in target.
"""

from __future__ import annotations

import http.server
import json
import shutil
import signal
import threading
import time
import urllib.parse
import urllib.request
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from controller.export.grafana import Dashboard, dashboard
from controller.export.prometheus import ERROR, MEASURE, rule_file
from controller.measure import metrics as mt
from controller.pipeline import Build, build
from tests.test_measure_prometheus import Prometheus, _Exporter
from tests.verify_support import POLICY, policy_build

REPO = Path(__file__).resolve().parent.parent
VARIABLE_TYPES = {"query", "adhoc", "constant", "datasource", "interval", "textbox", "custom", "system"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}


# --------------------------------------------------------------------------- PromQL names, without a regex


def _after(expr: str, i: int, close: str) -> int:
    """The index after ``close`` at or past ``i``, stepping over quoted strings (they may hold ``close``)."""
    while expr[i] != close:
        i = expr.index('"', i + 1) + 1 if expr[i] == '"' else i + 1
    return i + 1


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects: identifiers that are not functions, keywords or labels."""
    names: set[str] = set()
    i, n = 0, len(expr)
    skip_parens = False
    while i < n:
        ch = expr[i]
        if ch == '"':
            i = expr.index('"', i + 1) + 1
        elif ch in "{[":
            i = _after(expr, i, "}" if ch == "{" else "]")
        elif ch == "(" and skip_parens:
            i = expr.index(")", i) + 1
            skip_parens = False
        elif ch.isalpha() or ch in "_:":
            j = i
            while j < n and (expr[j].isalnum() or expr[j] in "_:"):
                j += 1
            word, rest = expr[i:j], expr[j:].lstrip()
            if word in GROUPING:
                skip_parens = True
            elif word not in KEYWORDS | AGGREGATIONS and not rest.startswith("(") and not expr[i - 1 : i].isdigit():
                names.add(word)
            i = j
        else:
            i += 1
    return names


def test_metric_names_reads_selectors_not_labels_or_functions() -> None:
    expr = 'sum by (site, context) (rate(a:b{x="y}"}[5m])) / on (site) group_left (context) c or 1e-09 * d'
    assert metric_names(expr) == {"a:b", "c", "d"}


# --------------------------------------------------------------------------- the model


def check_model(data: dict[str, Any]) -> list[str]:
    """Problems against the dashboard model's required fields (empty: none)."""
    problems = []
    for key, kind in (("title", str), ("schemaVersion", int), ("editable", bool), ("graphTooltip", int)):
        if not isinstance(data.get(key), kind):
            problems.append(f"dashboard.{key} missing or not {kind.__name__}")
    variables = data.get("templating", {}).get("list", [])
    for v in variables:
        if v.get("type") not in VARIABLE_TYPES or not v.get("name") or v.get("hide") not in (0, 1, 2):
            problems.append(f"variable {v.get('name')}: type, name and hide are required")
    defined = {f"${{{v['name']}}}" for v in variables if v.get("type") == "datasource"}
    for p in data.get("panels", []):
        where = f"panel {p.get('id')} ({p.get('title')})"
        if not isinstance(p.get("id"), int) or not p.get("type"):
            problems.append(f"{where}: id and type are required")
        g = p.get("gridPos", {})
        if not (g.get("h", 0) > 0 and 0 < g.get("w", 0) <= 24 and 0 <= g.get("x", -1) < 24 and g.get("y", -1) >= 0):
            problems.append(f"{where}: gridPos {g} out of the 24-column grid")
        elif g["x"] + g["w"] > 24:
            problems.append(f"{where}: wider than the grid")
        if p.get("type") == "row":
            if not isinstance(p.get("collapsed"), bool) or not isinstance(p.get("panels"), list):
                problems.append(f"{where}: a row needs collapsed and panels")
            continue
        fc = p.get("fieldConfig", {})
        if not isinstance(p.get("options"), dict) or not isinstance(p.get("transformations"), list):
            problems.append(f"{where}: options and transformations are required")
        if not isinstance(fc.get("defaults"), dict) or not isinstance(fc.get("overrides"), list):
            problems.append(f"{where}: fieldConfig needs defaults and overrides")
        refs = [t.get("refId") for t in p.get("targets", [])]
        if len(set(refs)) != len(refs) or not all(refs):
            problems.append(f"{where}: every target needs its own refId")
        if p.get("targets") and p.get("datasource", {}).get("uid") not in defined:
            problems.append(f"{where}: datasource is not the dashboard's datasource variable")
    return problems


def overlaps(panels: list[dict[str, Any]]) -> list[tuple[int, int]]:
    out = []
    for a, b in combinations(panels, 2):
        ga, gb = a["gridPos"], b["gridPos"]
        apart = (
            ga["x"] + ga["w"] <= gb["x"]
            or gb["x"] + gb["w"] <= ga["x"]
            or ga["y"] + ga["h"] <= gb["y"]
            or gb["y"] + gb["h"] <= ga["y"]
        )
        if not apart:
            out.append((a["id"], b["id"]))
    return out


def loaded(board: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana reads it: parsed back from its JSON text."""
    data: dict[str, Any] = json.loads(board.text())
    return data


def test_bundled_dashboard_satisfies_the_model() -> None:
    b = build(REPO / "policies")
    assert b.ok
    board = dashboard(b)
    data = loaded(board)
    assert check_model(data) == []
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    assert overlaps(data["panels"]) == []
    rows = [p["title"].split(" ")[0] for p in data["panels"] if p["type"] == "row"]
    assert rows == list(board.journeys)  # one row per journey with rules, in name order
    text = next(p for p in data["panels"] if p["type"] == "text")
    assert "crm-web" in text["options"]["content"]  # journeys without rules are named, with the reason


def test_broken_dashboards_are_caught_by_the_checks() -> None:
    data = loaded(dashboard(build(REPO / "policies")))
    data["panels"][1]["gridPos"] = dict(data["panels"][2]["gridPos"])
    del data["panels"][3]["fieldConfig"]["overrides"]
    data["panels"][4]["datasource"] = {"uid": "${nope}"}
    del data["schemaVersion"]
    assert len(check_model(data)) == 3
    assert (data["panels"][1]["id"], data["panels"][2]["id"]) in overlaps(data["panels"])


def test_every_query_names_only_recorded_series(tmp_path: Path) -> None:
    for b in (build(REPO / "policies"), policy_build(tmp_path / "p")):
        recorded = set(rule_file(b).recorded())
        for expr in dashboard(b).exprs():
            names = metric_names(expr)
            assert names, expr
            assert names <= recorded, f"{expr}: {names - recorded} not recorded by the rule file"


def test_cli_dashboard_is_deterministic(tmp_path: Path) -> None:
    runner = CliRunner()
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    for out in outs:
        result = runner.invoke(cli, ["export", "grafana-dashboard", str(REPO / "policies"), "--out", str(out)])
        assert result.exit_code == 0, result.output
    assert outs[0].read_bytes() == outs[1].read_bytes()
    bad = runner.invoke(cli, ["export", "grafana-dashboard", str(tmp_path / "none"), "--out", str(tmp_path / "c")])
    assert bad.exit_code == 1 and "Traceback" not in bad.output + bad.stderr


# --------------------------------------------------------------------------- against a real Prometheus


def exporter_body() -> bytes:
    """A live endpoint with every source series of the test policy's journeys with rules; voice at hq loses 5 %."""
    values = {
        ("voice", "one_way_delay_ms"): 20,
        ("voice", "jitter_ms"): 2,
        ("voice", "loss_pct"): 0,
        ("tv", "startup_s"): 2,
        ("tv", "rebuffering_pct"): 0.5,
        ("backups", "throughput_kbps"): 4000,
    }
    lines = []
    for metric in sorted({m for _, m in values}):
        assert metric in mt.BY_NAME
        lines.append(f"# TYPE {mt.OPENMETRICS_PREFIX}{metric} gauge")
        for (journey, m), value in sorted(values.items()):
            if m == metric:
                for site in ("hq", "branch-1"):
                    v = 5 if (journey, metric, site) == ("voice", "loss_pct", "hq") else value
                    lines.append(f'{mt.OPENMETRICS_PREFIX}{metric}{{journey="{journey}",site="{site}"}} {v}')
    return ("\n".join(lines) + "\n").encode()


VOICE_QUERIES = """\
    queries:
      one_way_delay_ms: 'qoectl_one_way_delay_ms{journey="voice"}'
      jitter_ms: 'qoectl_jitter_ms{journey="voice"}'
      loss_pct: 'qoectl_loss_pct{journey="voice"}'
"""


def live_policy(folder: Path) -> Build:
    """The test policy with 1-minute windows (look-backs have data after the first boundary) and voice queries."""
    text = POLICY.replace("window: 5m", "window: 1m").replace("window: 10m", "window: 1m")
    text = text.replace("  bandwidth: {share_pct: 5}\n", "  bandwidth: {share_pct: 5}\n  verify: {window: 1m}\n")
    text = text.replace(
        "    window: 1m\n    objective_pct: 99\n", "    window: 1m\n    objective_pct: 99\n" + VOICE_QUERIES
    )
    assert text.count("window: 1m") == 4 and VOICE_QUERIES in text
    folder.mkdir()
    (folder / "policy.yaml").write_text(text, encoding="utf-8")
    b = build(folder)
    assert b.ok
    return b


def firing(url: str) -> set[tuple[str, str]]:
    alerts = instant(url, 'ALERTS{alertname="QoectlErrorBudgetBurn",alertstate="firing",journey="voice"}')
    return {(a["metric"]["site"], a["metric"]["severity"]) for a in alerts}


def verify_firing(folder: Path, url: str) -> set[tuple[str, str]]:
    args = ["verify", str(folder), "--prometheus", url, "--since", "10m", "--step", "1s", "--journey", "voice"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    data = json.loads(result.stdout)
    assert not data["diagnostics"], data["diagnostics"]
    return {
        (row["segment"]["site"], a["severity"])
        for row in data["results"]
        for a in row["burn_rate_alerts"]
        if a["firing"]
    }


def handler(payload: bytes) -> type[http.server.BaseHTTPRequestHandler]:
    """The live endpoint of tests/test_measure_prometheus.py, serving ``payload``."""

    class Exporter(_Exporter):
        body = payload

    return Exporter


def instant(url: str, expr: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=10) as r:
        payload = json.loads(r.read())
    assert payload["status"] == "success", payload
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result


@pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="needs the Debian package 'prometheus' (prometheus and promtool on PATH)",
)
def test_a_real_prometheus_answers_every_panel_and_alerts_as_verify_does(tmp_path: Path) -> None:
    b = live_policy(tmp_path / "p")
    rules = tmp_path / "rules.yml"
    rules.write_text(rule_file(b, 1.0).text(), encoding="utf-8")
    board = dashboard(b)
    assert set(board.journeys) == {"voice", "tv", "backups"}
    exporter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(exporter_body()))
    thread = threading.Thread(target=exporter.serve_forever, daemon=True)
    thread.start()
    server = Prometheus(tmp_path, scrape_port=exporter.server_address[1])
    try:
        server.wait_ready()
        config = tmp_path / "prometheus.yml"
        config.write_text(config.read_text() + f"rule_files: ['{rules}']\n")
        server.proc.send_signal(signal.SIGHUP)  # reload with the exported rules, the server we started
        missing = list(board.exprs())
        deadline = time.monotonic() + 150
        while (missing or not firing(server.url)) and time.monotonic() < deadline:
            missing = [e for e in missing if not instant(server.url, e)]
            time.sleep(1)
        assert not missing, f"no data within 150 s for: {missing}"
        mos = {s["metric"]["site"]: float(s["value"][1]) for s in instant(server.url, f"{MEASURE}{{metric='mos'}}")}
        assert set(mos) == {"hq", "branch-1"} and mos["hq"] < 4.0 < 4.3 < mos["branch-1"]
        errors = {(s["metric"]["journey"], s["metric"]["site"]): s["value"][1] for s in instant(server.url, ERROR)}
        assert errors[("voice", "hq")] == "1" and errors[("voice", "branch-1")] == "0"
        assert {s["metric"].get("context") for s in instant(server.url, ERROR)} == {"campus", "branch"}
        # the same server, read by qoectl verify: the same alerts fire, for the same segments
        prometheus_says = firing(server.url)
        assert prometheus_says == {("hq", "page"), ("hq", "ticket")}
        assert verify_firing(tmp_path / "p", server.url) == prometheus_says
    finally:
        server.stop()
        exporter.shutdown()
        exporter.server_close()
