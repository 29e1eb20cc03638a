"""``qoectl export prometheus-rules`` proven by Prometheus's own rule engine (``promtool``, Debian ``prometheus``).

* ``promtool check rules`` accepts the export of the bundled policies and of a
  generated policy with several journeys, codecs, objectives and periods;
* ``promtool test rules`` runs unit tests the test writes from the export: the
  E-model in PromQL gives the MOS :mod:`controller.qoe.emodel` gives; a series
  that burns the budget fast fires the page alert with the segment's labels,
  one that stays in target fires nothing, one that burns slowly only the
  ticket alert;
* agreement: the same synthetic data, as a measurements file, goes through
  ``qoectl verify``'s engine; the expected alerts of the promtool test are
  *written from verify's verdicts* (which alert fires for which segment), so
  the test passes only if Prometheus fires exactly what verify reports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from controller.cli.main import cli
from controller.export.prometheus import ALERT, escape_template, groups_of, rule_file
from controller.pipeline import Build, build
from controller.qoe import emodel
from tests.verify_support import POLICY, T0, journey_yaml, policy_build, write_csv

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="needs promtool (Debian package 'prometheus'; .ci/run installs it)"
)
REPO = Path(__file__).resolve().parent.parent
STEP = 60  # s: the test's sample interval, the rules' evaluation interval and verify's default --step

EXTRA = (
    journey_yaml(
        "voice-g729",
        ("udp", "40000-40100", "198.18.21.0/24"),
        {"voice": {"codec": "g729a", "mos": 3.6}},
        {
            "window": "1m",
            "objective_pct": 99.5,
            "period": "7d",
            "queries": {
                "one_way_delay_ms": 'avg by (site) (rtp_delay_ms{app="g729"})',
                "jitter_ms": 'avg by (site) (rtp_jitter_ms{app="g729"})',
                "loss_pct": 'avg by (site) (rtp_loss_ratio{app="g729"}) * 100 # a ratio in the exporter',
            },
        },
        priority="high",
        bandwidth={"per_flow_kbps": 40, "concurrent_flows": 5},
        owner="ops {{ $labels.site }}",
        description="calls; {{ not a template }}",
    )
    + journey_yaml(
        "meetings",
        ("udp", 3478, "198.18.22.0/24"),
        {
            "video": {
                "mode": "conferencing",
                "bitrate_kbps": 1500,
                "one_way_delay_ms": 150,
                "jitter_ms": 30,
                "loss_pct": 1,
            }
        },
        {"window": "2m", "objective_pct": 95, "period": "28d"},
    )
    + journey_yaml(
        "portal",
        ("tcp", 8443, "198.18.23.0/24"),
        {"interactive": {"apdex_t_ms": 1000, "apdex": 0.9, "round_trips": 2}},
        {"objective_pct": 100, "queries": {"apdex": "avg by (site, context) (portal_apdex)"}},
    )
)


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


def export(b: Build, folder: Path) -> Path:
    path = folder / "rules.yml"
    path.write_text(rule_file(b, STEP).text(), encoding="utf-8")
    return path


def run_length(values: Sequence[float]) -> str:
    """Values, one per interval, in promtool's expanding notation (``v+0xN`` is N+1 copies of v)."""
    out, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        out.append(f"{values[i]:g}+0x{j - i}")
        i = j + 1
    return " ".join(out)


# --------------------------------------------------------------------------- promtool check rules


@needs_promtool
def test_bundled_policies_export_passes_promtool_check(tmp_path: Path) -> None:
    b = build(REPO / "policies")
    assert b.ok
    result = rule_file(b, STEP)
    path = tmp_path / "rules.yml"
    path.write_text(result.text(), encoding="utf-8")
    done = promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "voice" in result.journeys and "video-meetings" in result.journeys
    # every journey of the policy is either exported or named with the reason
    named = set(result.journeys) | {n.journey for n in result.notes}
    assert named == {j.name for j in b.policy.journeys}
    assert any(n.journey == "crm-web" and "response_time_ms" in n.message for n in result.notes)


@needs_promtool
def test_generated_policy_export_passes_promtool_check(tmp_path: Path) -> None:
    b = policy_build(tmp_path / "p", EXTRA)
    result = rule_file(b, STEP)
    path = export(b, tmp_path)
    done = promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(result.journeys) == {"voice", "voice-g729", "meetings", "portal", "tv", "backups"}
    assert [n.journey for n in result.notes if n.message.startswith("no rules")] == ["web"]
    groups = {g["name"]: g for g in groups_of(path.read_text())}
    g729 = groups["qoectl-journey-voice-g729"]["rules"]
    samples = [r for r in g729 if r.get("record") == "qoectl:journey_sample"]
    assert any("rtp_loss_ratio" in r["expr"] for r in samples)  # the journey's own queries, not the defaults
    alert = next(r for r in g729 if r.get("alert") == ALERT and r["labels"]["severity"] == "page")
    assert alert["annotations"]["owner"] == escape_template("ops {{ $labels.site }}")


def test_broken_templates_in_descriptions_are_shown_literally() -> None:
    assert escape_template("a {{ b }} c") == 'a {{ "{{" }} b {{ "}}" }} c'
    assert escape_template("no braces") == "no braces"


# --------------------------------------------------------------------------- promtool test rules


def render(template: str, labels: dict[str, str]) -> str:
    """What Prometheus makes of the exported annotations: label values, and the quoted braces as braces."""
    out = template.replace('{{ "{{" }}', "\0open").replace('{{ "}}" }}', "\0close")
    for name in ("site", "context"):
        out = out.replace(f"{{{{ $labels.{name} }}}}", labels.get(name, ""))
    return out.replace("\0open", "{{").replace("\0close", "}}")


def expected_alert(rules: list[dict[str, Any]], journey: str, segment: dict[str, str], severity: str) -> dict[str, Any]:
    rule = next(r for r in rules if r.get("alert") == ALERT and r["labels"]["severity"] == severity)
    labels = {
        **segment,
        "journey": journey,
        "severity": severity,
        "sloth_severity": severity,
        "sloth_id": f"qoectl-{journey}",
        "sloth_service": "qoectl",
        "sloth_slo": journey,
    }
    annotations = {k: render(v, labels) for k, v in rule["annotations"].items()}
    return {"exp_labels": labels, "exp_annotations": annotations}


def voice_series(per_site: dict[str, list[tuple[float, float, float]]]) -> list[dict[str, str]]:
    out = []
    for site, points in sorted(per_site.items()):
        for k, metric in enumerate(("one_way_delay_ms", "jitter_ms", "loss_pct")):
            out.append(
                {
                    "series": f'qoectl_{metric}{{journey="voice",site="{site}"}}',
                    "values": run_length([p[k] for p in points]),
                }
            )
    return out


def voice_csv(path: Path, per_site: dict[str, list[tuple[float, float, float]]]) -> Path:
    rows = []
    for site, points in sorted(per_site.items()):
        for minute, (delay, jitter, loss) in enumerate(points):
            ts = T0 + STEP * minute
            rows += [
                (ts, "voice", site, "one_way_delay_ms", delay),
                (ts, "voice", site, "jitter_ms", jitter),
                (ts, "voice", site, "loss_pct", loss),
            ]
    return write_csv(path, rows)


GOOD = (20.0, 2.0, 0.0)  # MOS 4.4
BAD = (20.0, 2.0, 5.0)  # MOS 2.1: misses 4.0


def scenario(minutes: int) -> dict[str, list[tuple[float, float, float]]]:
    """hq burns fast (the last 20 minutes bad), branch-1 stays in target, branch-2 burns slowly (1 window in 32)."""
    fast = [GOOD] * (minutes - 20) + [BAD] * 20
    slow = []
    for minute in range(minutes):
        window = (minute + 4) // 5  # the 5-minute window (ending at a multiple of 5 min) holding this minute
        slow.append(BAD if window % 32 == 7 else GOOD)
    return {"hq": fast, "branch-1": [GOOD] * minutes, "branch-2": slow}


def verify_alerts(folder: Path, csv: Path) -> dict[str, set[str]]:
    """Site -> severities whose burn-rate alert ``qoectl verify --measurements FILE --json`` reports firing."""
    args = ["verify", str(folder), "--measurements", str(csv), "--journey", "voice", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1, 3), result.output
    data = json.loads(result.stdout)
    assert not data["diagnostics"]
    return {
        row["segment"]["site"]: {a["severity"] for a in row["burn_rate_alerts"] if a["firing"]}
        for row in data["results"]
        if row["segment"]["site"]
    }


def unit_test_file(
    folder: Path, rules: Path, eval_s: int, series: list[dict[str, str]], alerts: list[dict[str, Any]]
) -> Path:
    doc = {
        "rule_files": [rules.name],
        "evaluation_interval": f"{STEP}s",
        "tests": [
            {
                "interval": f"{STEP}s",
                "input_series": series,
                "alert_rule_test": [{"eval_time": f"{eval_s}s", "alertname": ALERT, "exp_alerts": alerts}],
            }
        ],
    }
    path = folder / "test.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@needs_promtool
def test_prometheus_alerts_agree_with_verify_on_the_same_data(tmp_path: Path) -> None:
    b = policy_build(tmp_path / "p")
    rules_path = export(b, tmp_path)
    minutes = 8 * 60 + 1  # samples at 0 .. 8 h; both evaluate at 8 h, a multiple of the 5-minute window
    data = scenario(minutes)
    verdicts = verify_alerts(tmp_path / "p", voice_csv(tmp_path / "m.csv", data))
    # what the scenario was built to show, as verify sees it
    assert verdicts == {"hq": {"page", "ticket"}, "branch-1": set(), "branch-2": {"ticket"}}
    rules = next(g for g in groups_of(rules_path.read_text()) if g["name"] == "qoectl-journey-voice")["rules"]
    contexts = {"hq": "campus", "branch-1": "branch", "branch-2": "branch"}
    alerts = [
        expected_alert(rules, "voice", {"site": site, "context": contexts[site]}, severity)
        for site, severities in sorted(verdicts.items())
        for severity in sorted(severities)
    ]
    eval_s = STEP * (minutes - 1)
    test_file = unit_test_file(tmp_path, rules_path, eval_s, voice_series(data), alerts)
    done = promtool("test", "rules", str(test_file), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # and the comparison can fail: claiming that the site in target pages is refused by Prometheus
    wrong = alerts + [expected_alert(rules, "voice", {"site": "branch-1", "context": "branch"}, "page")]
    unit_test_file(tmp_path, rules_path, eval_s, voice_series(data), wrong)
    refused = promtool("test", "rules", str(test_file), cwd=tmp_path)
    assert refused.returncode != 0 and "FAILED" in refused.stdout + refused.stderr


@needs_promtool
def test_in_target_fires_nothing_and_a_fast_burn_pages_within_minutes(tmp_path: Path) -> None:
    b = policy_build(tmp_path / "p")
    rules_path = export(b, tmp_path)
    rules = next(g for g in groups_of(rules_path.read_text()) if g["name"] == "qoectl-journey-voice")["rules"]
    minutes = 121
    data = {"hq": [GOOD] * (minutes - 10) + [BAD] * 10, "branch-1": [GOOD] * minutes}
    series = voice_series(data)
    doc = {
        "rule_files": [rules_path.name],
        "evaluation_interval": f"{STEP}s",
        "tests": [
            {
                "interval": f"{STEP}s",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "110m", "alertname": ALERT, "exp_alerts": []},  # all good so far
                    {
                        "eval_time": "120m",  # 2 of 12 windows bad in 1 h (16.7 % >= 14.4 %), the last one bad
                        "alertname": ALERT,
                        "exp_alerts": [
                            expected_alert(rules, "voice", {"site": "hq", "context": "campus"}, "page"),
                            expected_alert(rules, "voice", {"site": "hq", "context": "campus"}, "ticket"),
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "fast.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    done = promtool("test", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_promql_e_model_gives_the_mos_of_controller_qoe(tmp_path: Path) -> None:
    b = policy_build(tmp_path / "p", EXTRA)
    rules_path = export(b, tmp_path)
    cases = {  # site: (delay, jitter, loss); beyond the delay knee, lossy, perfect
        "hq": (250.0, 12.0, 0.7),
        "branch-1": (35.0, 4.0, 2.5),
        "branch-2": (0.0, 0.0, 0.0),
    }
    series = []
    for site, (delay, jitter, loss) in cases.items():
        for name, value in (("rtp_delay_ms", delay), ("rtp_jitter_ms", jitter), ("rtp_loss_ratio", loss / 100.0)):
            series.append({"series": f'{name}{{app="g729",site="{site}"}}', "values": f"{value:g}+0x10"})
    expected = []
    for site, (delay, jitter, loss) in cases.items():
        mos = emodel.voice_quality(delay, jitter, loss, "g729a").mos
        labels = f'codec="g729a",journey="voice-g729",metric="mos",site="{site}"'
        expected.append({"labels": f"qoectl:journey_measure:window{{{labels}}}", "value": mos})
    doc = {
        "rule_files": [rules_path.name],
        "evaluation_interval": f"{STEP}s",
        "tests": [
            {
                "interval": f"{STEP}s",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": 'qoectl:journey_measure:window{journey="voice-g729",metric="mos"}',
                        "eval_time": "5m",
                        "exp_samples": expected,
                    }
                ],
            }
        ],
    }
    path = tmp_path / "emodel.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    done = promtool("test", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------- the command


def test_cli_writes_identical_files_and_names_the_journeys_without_rules(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    policy_build(folder, EXTRA)
    runner = CliRunner()
    first = runner.invoke(cli, ["export", "prometheus-rules", str(folder), "--out", str(tmp_path / "a.yml")])
    assert first.exit_code == 0, first.output
    assert "journey web: no rules: response_time_ms" in first.stderr
    second = runner.invoke(cli, ["export", "prometheus-rules", str(folder), "--out", str(tmp_path / "b.yml"), "--json"])
    assert second.exit_code == 0
    assert (tmp_path / "a.yml").read_bytes() == (tmp_path / "b.yml").read_bytes()
    data = json.loads(second.stdout)
    assert "web" not in data["journeys"] and "voice" in data["journeys"]
    assert any(n["journey"] == "web" for n in data["notes"])


def test_cli_bad_policy_is_reported_at_its_line_without_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "policy.yaml").write_text(POLICY.replace("objective_pct: 99", "objective_pct: 140"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["export", "prometheus-rules", str(folder), "--out", str(tmp_path / "r.yml")])
    assert result.exit_code == 1
    assert "policy.yaml:" in result.stderr and "objective_pct" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "r.yml").exists()


# --------------------------------------------------------------------------- agreement across periods and windows

# per journey of EXTRA + POLICY: (window in minutes, the series of one sample: metric -> (good, bad) values)
MIXED = {
    "voice": (5, {"one_way_delay_ms": (20.0, 20.0), "jitter_ms": (2.0, 2.0), "loss_pct": (0.0, 5.0)}),
    "voice-g729": (1, {"one_way_delay_ms": (30.0, 260.0), "jitter_ms": (3.0, 3.0), "loss_pct": (0.0, 2.0)}),
    "meetings": (2, {"one_way_delay_ms": (60.0, 60.0), "jitter_ms": (5.0, 45.0), "loss_pct": (0.2, 0.2)}),
    "portal": (5, {"apdex": (0.97, 0.6)}),
}
SOURCE = {  # how the test's Prometheus holds each journey's metric (the queries of EXTRA, else the qoectl_ families)
    ("voice-g729", "one_way_delay_ms"): ('rtp_delay_ms{{app="g729",{where}}}', 1.0),
    ("voice-g729", "jitter_ms"): ('rtp_jitter_ms{{app="g729",{where}}}', 1.0),
    ("voice-g729", "loss_pct"): ('rtp_loss_ratio{{app="g729",{where}}}', 0.01),
    ("portal", "apdex"): ("portal_apdex{{{where}}}", 1.0),
}


def mixed_segments(journey: str) -> list[tuple[str, str]]:
    """(site, context) segments; portal is measured per context too (a series without a site)."""
    sites = [("hq", ""), ("branch-1", ""), ("branch-2", "")]
    return sites + [("", "branch")] if journey == "portal" else sites


def window_states(mode: str, windows: int, seed: int) -> list[str]:
    """Per window: good, bad or gap (a metric missing: no verdict); deterministic."""
    import random

    rng = random.Random(seed)
    if mode == "fast":
        return ["good"] * (windows - max(3, windows // 16)) + ["bad"] * max(3, windows // 16)
    if mode == "slow":
        return ["bad" if k % 23 == 11 else "good" for k in range(windows)]
    if mode == "noisy":
        return [rng.choice(["bad", "gap", "good", "good", "good", "good", "good", "good"]) for _ in range(windows)]
    return ["good"] * windows


def mixed_data(minutes: int) -> dict[tuple[str, str, str, str], list[float | None]]:
    """(journey, site, context, metric) -> a value per minute (None: not measured)."""
    modes = ["good", "fast", "slow", "noisy"]
    data: dict[tuple[str, str, str, str], list[float | None]] = {}
    for j, (journey, (window, metrics)) in enumerate(sorted(MIXED.items())):
        for s, (site, context) in enumerate(mixed_segments(journey)):
            states = window_states(modes[(j + s + 1) % len(modes)], minutes // window + 1, seed=31 * j + s)
            for k, (metric, (good, bad)) in enumerate(sorted(metrics.items())):
                values: list[float | None] = []
                for minute in range(minutes):
                    state = states[(minute + window - 1) // window]  # windows end at multiples of the window
                    if state == "gap" and k == 0:
                        values.append(None)
                    else:
                        values.append(bad if state == "bad" else good)
                data[(journey, site, context, metric)] = values
    return data


def mixed_inputs(data: dict[tuple[str, str, str, str], list[float | None]]) -> list[dict[str, str]]:
    out = []
    for (journey, site, context, metric), values in sorted(data.items()):
        where = f'site="{site}"' if site else f'context="{context}"'
        pattern, scale = SOURCE.get((journey, metric), (f'qoectl_{metric}{{{{journey="{journey}",{{where}}}}}}', 1.0))
        texts = ["stale" if v is None else repr(v * scale) for v in values]
        out.append({"series": pattern.format(where=where), "values": " ".join(texts)})
    return out


def mixed_csv(path: Path, data: dict[tuple[str, str, str, str], list[float | None]]) -> Path:
    rows = []
    for (journey, site, context, metric), values in sorted(data.items()):
        scale = SOURCE.get((journey, metric), ("", 1.0))[1]
        for minute, v in enumerate(values):
            if v is not None:  # the file holds what the query gives: the ratio x 100 for the g729 loss
                rows.append((T0 + STEP * minute, journey, site, context, metric, (v * scale) * (1 / scale)))
    return write_csv(path, rows, ("timestamp", "journey", "site", "context", "metric", "value"))


@needs_promtool
def test_alerts_agree_with_verify_across_periods_objectives_windows_and_contexts(tmp_path: Path) -> None:
    """Four journeys (30 d / 99 %, 7 d / 99.5 % with 1-minute windows, 28 d / 95 % with 2-minute windows,
    100 % with a context-only segment), segments in target, burning fast, slowly and noisily with windows
    missing a metric: Prometheus fires exactly the alerts verify reports, segment by segment."""
    b = policy_build(tmp_path / "p", EXTRA)
    rules_path = export(b, tmp_path)
    minutes = 7 * 60 + 1
    data = mixed_data(minutes)
    args = ["verify", str(tmp_path / "p"), "--measurements", str(mixed_csv(tmp_path / "m.csv", data)), "--json"]
    result = CliRunner().invoke(cli, args)
    report = json.loads(result.stdout)
    assert not report["diagnostics"]
    groups = {g["name"]: g["rules"] for g in groups_of(rules_path.read_text())}
    contexts = {s.name: s.context for s in b.policy.sites}
    alerts, firing = [], 0
    for row in report["results"]:
        if row["journey"] not in MIXED:
            continue
        site, context = row["segment"]["site"], row["segment"]["context"]
        segment = {"site": site, "context": contexts[site]} if site else {"context": context}
        for severity in sorted({a["severity"] for a in row["burn_rate_alerts"] if a["firing"]}):
            alerts.append(expected_alert(groups[f"qoectl-journey-{row['journey']}"], row["journey"], segment, severity))
            firing += 1
    quiet = sum(
        1 for r in report["results"] if r["journey"] in MIXED and not any(a["firing"] for a in r["burn_rate_alerts"])
    )
    assert firing >= 6 and quiet >= 3  # the data makes both kinds of verdict, for several journeys
    assert {a["exp_labels"]["journey"] for a in alerts} == set(MIXED)
    test_file = unit_test_file(tmp_path, rules_path, STEP * (minutes - 1), mixed_inputs(data), alerts)
    done = promtool("test", "rules", str(test_file), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
