"""Juniper Junos renderer: set lines that close, a CoS chain that means the plan, limits reported like errors."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from controller.configtext.meaning import ParseError
from controller.pipeline import Build, build, render_plan
from controller.platforms.juniper_junos import parser as junos_parser

DEVICE = "hq-dc-rtr1"
SAFE_LINE = re.compile(r"^(set|delete) [A-Za-z0-9 ./:_-]+$")


@pytest.fixture(scope="module")
def cos(example_build: Build) -> str:
    plan = example_build.plan(DEVICE)
    assert plan is not None and plan.platform == "juniper_junos"
    return render_plan(plan)["cos.set"]


def _set(cos: str, prefix: str) -> list[str]:
    return [line[len(prefix) :].strip() for line in cos.splitlines() if line.startswith(prefix)]


def test_every_line_is_a_plain_set_or_delete_command(cos: str) -> None:
    bad = [line for line in cos.splitlines() if not SAFE_LINE.match(line)]
    assert not bad, bad


def test_every_reference_is_defined_and_the_chain_closes(cos: str) -> None:
    treatment = junos_parser.parse({"cos.set": cos})
    assert treatment["VOICE"].strict and treatment["VOICE"].dscp == 46
    assert not treatment["CRM-WEB"].strict and treatment["CRM-WEB"].dscp == 18


def test_default_class_sits_on_queue_zero_and_queues_are_distinct(cos: str) -> None:
    queues = dict(line.split(" queue-num ") for line in _set(cos, "set class-of-service forwarding-classes class "))
    assert queues["QOECTL-STANDARD"] == "0"
    assert len(set(queues.values())) == len(queues) <= 8


def test_strict_class_is_strict_high_and_rate_limited(cos: str) -> None:
    sched = "QOECTL-XE-0-0-0-TELEPHONY"
    lines = _set(cos, f"set class-of-service schedulers {sched} ")
    assert "priority strict-high" in lines
    # Capped at the plan's guarantee in bps (20 calls x 90 kbit/s), not at a whole percent of the link.
    assert "transmit-rate 1800000 rate-limit" in lines
    strict = [line for line in _set(cos, "set class-of-service schedulers ") if line.endswith("priority strict-high")]
    assert len(strict) == 2, "one strict-high queue per WAN interface (two WAN interfaces)"


def test_transmit_rates_fill_the_link_on_every_interface(cos: str) -> None:
    """Whole percents for the rate classes plus the strict class's exact rate: the link, less under 1 %."""
    for ifname, shaped in (("XE-0-0-0", "xe-0/0/0"), ("GE-0-0-1", "ge-0/0/1")):
        percents = [
            int(m.group(1)) for m in re.finditer(rf"schedulers QOECTL-{ifname}-\S+ transmit-rate percent (\d+)", cos)
        ]
        strict_bps = [int(m.group(1)) for m in re.finditer(rf"schedulers QOECTL-{ifname}-\S+ transmit-rate (\d+)", cos)]
        link_bps = int(re.search(rf"interfaces {shaped} shaping-rate (\d+)", cos).group(1))  # type: ignore[union-attr]
        total = sum(percents) + 100.0 * sum(strict_bps) / link_bps
        assert 99.0 < total <= 100.0, (ifname, percents, strict_bps)


def test_sub_rate_link_is_shaped_and_line_rate_link_is_not(example_build: Build, cos: str) -> None:
    assert "set class-of-service interfaces xe-0/0/0 shaping-rate 200000000" in cos
    assert "set class-of-service interfaces ge-0/0/1 shaping-rate 500000000" in cos


def test_classifier_and_rewrite_rule_are_inverse(cos: str) -> None:
    classify: dict[str, tuple[str, str]] = {}
    for line in _set(cos, "set class-of-service classifiers dscp QOECTL-CLASSIFY "):
        words = line.split()
        classify[words[5]] = (words[1], words[3])
    rewrites = _set(cos, "set class-of-service rewrite-rules dscp QOECTL-REWRITE ")
    assert rewrites
    for line in rewrites:
        words = line.split()
        fc, lp, code = words[1], words[3], words[5]
        assert classify[code] == (fc, lp), line


def test_untrusted_lan_unit_is_remarked_to_the_default_class(cos: str) -> None:
    assert "set interfaces ge-0/0/3 unit 100 family inet filter input QOECTL-MARK-UNTRUSTED" in cos
    term = "set firewall family inet filter QOECTL-MARK-UNTRUSTED term UNTRUSTED then "
    assert _set(cos, term) == ["forwarding-class QOECTL-STANDARD", "loss-priority low", "dscp be", "accept"]
    # The trusted LAN keeps its markings: BA classifier on its unit, a final accept-only term.
    assert "set class-of-service interfaces xe-0/0/2 unit 0 classifiers dscp QOECTL-CLASSIFY" in cos
    assert _set(cos, "set firewall family inet filter QOECTL-MARK term TRUSTED then ") == ["accept"]


def test_parser_reports_a_dangling_scheduler(cos: str) -> None:
    broken = "\n".join(line for line in cos.splitlines() if "schedulers QOECTL-XE-0-0-0-SIGNALING " not in line)
    with pytest.raises(ParseError, match="undefined scheduler QOECTL-XE-0-0-0-SIGNALING"):
        junos_parser.parse({"cos.set": broken})


def test_parser_reports_a_forwarding_class_that_is_not_defined(cos: str) -> None:
    broken = cos.replace("forwarding-classes class QOECTL-SIGNALING queue-num", "forwarding-classes class X queue-num")
    with pytest.raises(ParseError, match="forwarding class QOECTL-SIGNALING is used but not defined"):
        junos_parser.parse({"cos.set": broken})


def test_parser_sees_a_changed_share(cos: str) -> None:
    """The cross-platform comparison can fail: a different transmit rate reads back as a different share."""
    before = junos_parser.parse({"cos.set": cos})["CRM-WEB"].share("xe-0/0/0")
    changed = cos.replace(
        "schedulers QOECTL-XE-0-0-0-LOW-LATENCY-DATA transmit-rate percent 25",
        "schedulers QOECTL-XE-0-0-0-LOW-LATENCY-DATA transmit-rate percent 40",
    )
    assert changed != cos
    assert junos_parser.parse({"cos.set": changed})["CRM-WEB"].share("xe-0/0/0") == 40.0 != before


def test_fair_queue_degrades_to_a_note(example_build: Build) -> None:
    plan = example_build.plan(DEVICE)
    assert plan is not None
    assert any("flow-fair queuing" in n and "juniper_junos" in n for n in plan.notes)


# --------------------------------------------------------------------------- limits reported like validation errors

SITES = """\
apiVersion: qoectl/v1
kind: Inventory
metadata: {name: sites}
spec:
  sites:
    - {name: lab, context: branch}
  transports:
    - {name: mpls, base_delay_ms: 10, jitter_ms: 1, loss_pct: 0.01}
"""


def device_doc(platform: str, bandwidth_kbps: int, port_speed_kbps: int = 10_000_000) -> str:
    return f"""\
apiVersion: qoectl/v1
kind: Inventory
metadata: {{name: devices}}
spec:
  devices:
    - name: r1
      platform: {platform}
      host: r1.mgmt.acme.example
      site: lab
      tags: [edge]
      interfaces:
        - name: xe-0/0/0
          role: wan
          transport: mpls
          bandwidth_kbps: {bandwidth_kbps}
          port_speed_kbps: {port_speed_kbps}
        - name: xe-0/0/1
          role: lan
"""


def bulk_journey(name: str, port: int, share_pct: float, service_class: str | None = None) -> str:
    sc = f"\n  service_class: {service_class}" if service_class else ""
    return f"""\
apiVersion: qoectl/v1
kind: Journey
metadata: {{name: {name}}}
spec:
  traffic:
    match:
      - {{protocol: tcp, destination_ports: [{port}]}}
  target:
    bulk: {{min_throughput_kbps: 1}}
  bandwidth: {{share_pct: {share_pct}}}{sc}
"""


def voice_journey(name: str, port: int, service_class: str | None = None) -> str:
    sc = f"\n  service_class: {service_class}" if service_class else ""
    return f"""\
apiVersion: qoectl/v1
kind: Journey
metadata: {{name: {name}}}
spec:
  traffic:
    match:
      - {{protocol: udp, destination_ports: [{port}]}}
  target:
    voice: {{codec: g711, mos: 4.0}}
  priority: critical
  bandwidth: {{per_flow_kbps: 90, concurrent_flows: 10}}{sc}
"""


def write_repo(root: Path, docs: dict[str, str]) -> Path:
    for rel, text in docs.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def _errors(root: Path) -> list[str]:
    return [d.format() for d in build(root).errors]


def test_a_second_strict_class_is_reported_with_its_journey_and_location(tmp_path: Path) -> None:
    classes = """\
apiVersion: qoectl/v1
kind: ServiceClasses
metadata: {name: classes}
spec:
  classes:
    - {name: real-time-interactive, dscp: [cs4], strict_priority: true, queue_depth: 16}
"""
    docs = {
        "inventory/sites.yaml": SITES,
        "inventory/devices.yaml": device_doc("juniper_junos", 100_000),
        "classes.yaml": classes,
        "journeys/voice.yaml": voice_journey("voice", 5004),
        "journeys/gaming.yaml": voice_journey("gaming", 5005, service_class="real-time-interactive"),
    }
    root = write_repo(tmp_path, docs)
    errors = _errors(root)
    strict = [e for e in errors if "strict-priority classes" in e]
    assert len(strict) == 1, errors
    assert re.match(r"\S*journeys/gaming\.yaml:12:3: spec\.service_class: device r1 needs 2 strict", strict[0])
    assert "juniper_junos allows 1" in strict[0]
    # The same policy is fine where two strict queues exist (IOS-XE: two priority levels).
    (root / "inventory/devices.yaml").write_text(device_doc("cisco_iosxe", 100_000), encoding="utf-8")
    assert _errors(root) == []


def test_shaping_below_the_platform_minimum_is_reported_at_the_link(tmp_path: Path) -> None:
    docs = {
        "inventory/sites.yaml": SITES,
        "inventory/devices.yaml": device_doc("juniper_junos", 100, port_speed_kbps=1_000_000),
        "journeys/backup.yaml": bulk_journey("backup", 8400, 10),
    }
    root = write_repo(tmp_path, docs)
    errors = _errors(root)
    assert any(
        re.match(r".*/inventory/devices\.yaml:\d+:\d+: spec\.devices\[0\]\.interfaces\[0\]\.bandwidth_kbps: ", e)
        and "cannot shape xe-0/0/0 to 100 kbps" in e
        for e in errors
    ), errors


def granularity_repo(root: Path, platform: str) -> Path:
    classes = [
        "network-control",
        "signaling",
        "multimedia-conferencing",
        "real-time-interactive",
        "multimedia-streaming",
        "broadcast-video",
    ]
    docs = {
        "inventory/sites.yaml": SITES,
        "inventory/devices.yaml": device_doc(platform, 100_000),
        "journeys/oam.yaml": bulk_journey("ops", 9000, 10.9, service_class="oam"),
    }
    for i, cls in enumerate(classes):
        docs[f"journeys/j{i}.yaml"] = bulk_journey(f"j{i}", 9001 + i, 14.01, service_class=cls)
    return write_repo(root, docs)


def test_whole_percent_granularity_that_leaves_nothing_for_the_default_class_is_an_error(tmp_path: Path) -> None:
    """7 guarantees of 14.01 % / 10.9 % fit the link (94.96 %) but not in whole percent (101 %)."""
    root = granularity_repo(tmp_path, "juniper_junos")
    # Whole percent is qoectl's choice of "transmit-rate percent" (Junos also takes a rate): said as qoectl's limit.
    errors = [e for e in _errors(root) if "qoectl's juniper_junos renderer does not support guarantees finer" in e]
    assert len(errors) == 1, _errors(root)
    assert "round up to 101 %" in errors[0] and "journeys: j0, j1, j2, j3, j4, j5, ops" in errors[0]
    # Linux states rates in kbit/s: the same policy is expressible there.
    linux = device_doc("linux", 100_000).replace("xe-0/0/0", "wan0").replace("xe-0/0/1", "lan0")
    (root / "inventory/devices.yaml").write_text(linux, encoding="utf-8")
    assert _errors(root) == []


def test_validate_exits_1_and_prints_located_errors(tmp_path: Path) -> None:
    root = granularity_repo(tmp_path, "juniper_junos")
    qoectl = Path(sys.executable).with_name("qoectl")
    run = subprocess.run([str(qoectl), "validate", str(root)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    text = " ".join((run.stdout + run.stderr).split())  # rich may wrap long lines
    assert "devices.yaml:" in text and "bandwidth_kbps: qoectl's juniper_junos renderer" in text
    assert "on device r1 xe-0/0/0" in text


def test_example_still_validates_clean() -> None:
    qoectl = Path(sys.executable).with_name("qoectl")
    run = subprocess.run([str(qoectl), "validate", "policies"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


# --------------------------------------------------------------------------- issue 10: strict cap and network control


def test_strict_queue_is_capped_at_the_planned_rate_not_a_rounded_percent(tmp_path: Path) -> None:
    """1 Gbit/s link, 40 calls of 84 kbit/s: the strict queue is capped at 3,360 kbit/s (a whole 1 % is 10,000)."""
    voice = voice_journey("voice", 5004).replace(
        "per_flow_kbps: 90, concurrent_flows: 10", "per_flow_kbps: 84, concurrent_flows: 40"
    )
    docs = {
        "inventory/sites.yaml": SITES,
        "inventory/devices.yaml": device_doc("juniper_junos", 1_000_000),
        "journeys/voice.yaml": voice,
    }
    result = build(write_repo(tmp_path, docs))
    assert result.ok, [d.format() for d in result.errors]
    plan = result.plan("r1")
    assert plan is not None
    treatment = junos_parser.parse(render_plan(plan))["VOICE"]
    assert treatment.strict
    share = treatment.share("xe-0/0/0")
    assert share is not None
    assert share * 1_000_000 / 100 == pytest.approx(3360.0), f"strict queue capped at {share * 10_000:.0f} kbit/s"


def test_routing_engine_traffic_and_cs6_cs7_take_the_network_control_class(cos: str) -> None:
    control = junos_parser.control({"cos.set": cos})
    nc = control.queue_of[48]
    assert control.host_queue == nc == control.queue_of[56] != control.queue_of[0]
    assert not control.queues[nc].strict and not control.queues[nc].early_drop
    # Nothing the plan does not own is rewritten on the WAN: the router's own CS6/CS7 and a trusted CS2 keep theirs.
    assert (control.host[48], control.host[56], control.trusted[16]) == (48, 56, 16)
