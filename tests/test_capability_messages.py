"""Capability and limit messages say whose limit it is: the device's, or qoectl's renderer's (issue 10, item 5).

A message that says a *device* cannot do something must be true of the device.
Where the platform documents the feature and only qoectl's renderer does not
render it (yet), the message says so: "qoectl's <platform> renderer does not
support ... yet", with where the platform documents it.

The tables below classify every capability a renderer lacks and every limit
in its :class:`~controller.render.base.Limits`, with the source. The tests
check that the renderers declare exactly the qoectl-owned ones
(``Renderer.not_rendered_yet``, ``Limits.qoectl_limits``), that the table is
complete (a new capability or platform must be classified here), and that
the messages the compiler actually produces use the wording of their owner.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.compile.capabilities import check_plan
from controller.load.loader import load_policy
from controller.pipeline import Build, build, compile_policy
from controller.plan import DevicePlan, PlanMatch
from controller.render import base, get_renderer, platforms
from controller.render.base import CAPABILITY_TEXT, Limits, Renderer
from tests.conftest import EXAMPLE_POLICIES
from tests.policy_builder import PolicyRepo, device, interactive_journey, inventory, lan, site, transport, wan

DEVICE = "device limit"
QOECTL = "qoectl limit"

_NOT_SDWAN = "not an SD-WAN edge: the compiler plans SLA classes and path preferences only for SD-WAN platforms"
_NO_VPN = "no SD-WAN service VPNs: interfaces[].vpn is noted as unused, the QoS applies on the interface"

# platform -> capability it lacks -> (whose limit, source)
MISSING: dict[str, dict[str, tuple[str, str]]] = {
    "linux": {
        base.AQM: (DEVICE, "a kernel without the fq_codel qdisc (device.features has no fq_codel); tc-fq_codel(8)"),
        base.FAIR_QUEUE: (DEVICE, "as AQM: flow fairness comes from fq_codel, which the device does not declare"),
        base.SERVICE_VPN: (DEVICE, _NO_VPN),
    },
    "cisco_iosxe": {
        base.SDWAN_SLA: (DEVICE, _NOT_SDWAN + " (IOS XE in SD-WAN mode is the cisco_sdwan platform)"),
        base.SDWAN_PATH: (DEVICE, _NOT_SDWAN),
        base.SERVICE_VPN: (DEVICE, _NO_VPN),
    },
    "juniper_junos": {
        base.FAIR_QUEUE: (DEVICE, "Junos CoS schedulers: one queue per forwarding class, no per-flow queues in it"),
        base.SDWAN_SLA: (DEVICE, _NOT_SDWAN),
        base.SDWAN_PATH: (DEVICE, _NOT_SDWAN),
        base.SERVICE_VPN: (DEVICE, _NO_VPN),
    },
    "arista_eos": {
        base.AQM: (
            QOECTL,
            "EOS User Manual, Quality of Service: ECN and WRED on tx-queues (platform-dependent thresholds); "
            "qoectl leaves tx-queues tail-drop",
        ),
        base.FAIR_QUEUE: (DEVICE, "EOS tx-queues are FIFO queues; no per-flow queuing inside one"),
        base.SDWAN_SLA: (DEVICE, _NOT_SDWAN),
        base.SDWAN_PATH: (DEVICE, _NOT_SDWAN),
        base.SERVICE_VPN: (DEVICE, _NO_VPN),
    },
    "cisco_sdwan": {
        base.IPV6: (
            QOECTL,
            "Cisco Catalyst SD-WAN Policies Configuration Guide, Application-Aware Routing: "
            "'Application-Aware Routing for IPv6', IOS XE Catalyst SD-WAN 17.9.1a / vManage 20.9.1",
        ),
        base.FAIR_QUEUE: (DEVICE, "SD-WAN QoS: qos-scheduler per queue, weighted round robin, one FIFO per queue"),
    },
    "fortios_sdwan": {
        base.IPV6: (
            QOECTL,
            "FortiOS Administration Guide, SD-WAN rules: 'set addr-mode ipv6' (IPv6 service rules), "
            "firewall address6 objects",
        ),
        base.AQM: (
            QOECTL,
            "FortiOS 6.2.1+ 'Weighted random early detection support': shaping-profile entries take "
            "red-probability, min and max (not applied to NPU-offloaded traffic)",
        ),
        base.FAIR_QUEUE: (DEVICE, "each shaping-profile class is one queue; no per-flow queuing inside one"),
        base.SERVICE_VPN: (DEVICE, _NO_VPN),
    },
}

# platform -> Limits field -> (whose limit, source). Only the limits the checks use on that platform.
LIMITS: dict[str, dict[str, tuple[str, str]]] = {
    "linux": {
        "max_classes": (QOECTL, "qoectl's HTB tree: class ids 1:10 + queue; HTB itself takes 16-bit minor ids"),
        "max_strict_classes": (QOECTL, "qoectl's choice: strict classes are HTB prio 0; HTB has no limit of 4"),
        "min_bandwidth_pct": (QOECTL, "qoectl's rounding; HTB rates are kbit/s"),
    },
    "cisco_iosxe": {
        "max_classes": (QOECTL, "qoectl keeps 8 queuing classes for portability (renderer comment)"),
        "max_strict_classes": (DEVICE, "IOS XE MQC: 'priority level 1' and 'priority level 2'"),
        "min_bandwidth_pct": (
            QOECTL,
            "qoectl renders 'bandwidth remaining percent' (whole %); MQC also takes 'bandwidth remaining ratio'",
        ),
    },
    "juniper_junos": {
        "max_classes": (DEVICE, "MX: 8 queues per interface"),
        "max_strict_classes": (DEVICE, "Junos priority (Schedulers): strict-high on only one queue per interface"),
        "min_bandwidth_pct": (
            QOECTL,
            "qoectl renders 'transmit-rate percent' (whole %); Junos also takes 'transmit-rate <rate>'",
        ),
        "min_shape_kbps": (DEVICE, "Junos shaping-rate (physical interface) range"),
        "max_shape_kbps": (DEVICE, "Junos shaping-rate (physical interface) range"),
    },
    "arista_eos": {
        "max_classes": (DEVICE, "EOS: 8 tx-queues per interface"),
        "max_strict_classes": (DEVICE, "8 tx-queues, and the default class is a round-robin queue"),
        "min_bandwidth_pct": (DEVICE, "EOS tx-queue 'bandwidth percent' takes whole percent"),
    },
    "cisco_sdwan": {
        "max_classes": (DEVICE, "Cisco SD-WAN localized QoS: queues 0-7"),
        "max_strict_classes": (DEVICE, "Cisco SD-WAN: queue 0 is the only low-latency (LLQ) queue"),
        "min_bandwidth_pct": (DEVICE, "qos-scheduler 'bandwidth-percent' takes whole percent"),
        "sla_latency_ms": (DEVICE, "sla-class latency 1-1000 ms (round trip)"),
        "sla_jitter_ms": (DEVICE, "sla-class jitter 1-1000 ms (round trip)"),
        "sla_loss_pct": (DEVICE, "sla-class loss 0-100 %"),
    },
    "fortios_sdwan": {
        "max_classes": (DEVICE, "firewall traffic-class ids 2-31 (FortiOS 6.2 CLI reference)"),
        "max_strict_classes": (
            QOECTL,
            "qoectl gives one class 'priority top' capped at its guarantee; shaping entries offer five priorities",
        ),
        "min_bandwidth_pct": (DEVICE, "shaping entries 'guaranteed-bandwidth-percentage' take whole percent"),
        "sla_latency_ms": (DEVICE, "health-check latency-threshold 0-10000000 ms (round trip)"),
        "sla_jitter_ms": (DEVICE, "health-check jitter-threshold 0-10000000 ms (round trip)"),
        "sla_loss_pct": (DEVICE, "health-check packetloss-threshold 0-100 %"),
    },
}


def _qoectls(table: dict[str, tuple[str, str]]) -> set[str]:
    return {k for k, (who, _) in table.items() if who == QOECTL}


def test_every_missing_capability_and_limit_is_classified() -> None:
    assert set(MISSING) == set(LIMITS) == set(platforms())
    for platform in platforms():
        renderer = get_renderer(platform)
        assert renderer is not None
        missing = set(CAPABILITY_TEXT) - renderer.capabilities
        assert set(MISSING[platform]) == missing, f"{platform}: classify {sorted(missing ^ set(MISSING[platform]))}"
        fields = {f.name for f in dataclasses.fields(Limits)} - {"qoectl_limits"}
        assert set(LIMITS[platform]) <= fields, platform


@pytest.mark.parametrize("platform", sorted(MISSING))
def test_renderers_declare_which_limits_are_qoectls(platform: str) -> None:
    renderer = get_renderer(platform)
    assert renderer is not None
    assert set(renderer.not_rendered_yet) == _qoectls(MISSING[platform])
    assert all(renderer.not_rendered_yet.values()), "say where the platform documents it"
    assert set(renderer.limits.qoectl_limits) == _qoectls(LIMITS[platform])


def _plans(platform: str) -> tuple[Build, list[DevicePlan]]:
    """The bundled example with every device switched to ``platform`` (interfaces eth0, eth1, ...)."""
    policy, problems = load_policy(EXAMPLE_POLICIES)
    devices = tuple(
        dataclasses.replace(
            d,
            platform=platform,
            interfaces=tuple(dataclasses.replace(i, name=f"eth{k}") for k, i in enumerate(d.interfaces)),
        )
        for d in policy.devices
    )
    b = compile_policy(dataclasses.replace(policy, devices=devices), problems)
    plans = [p for p in b.plans if p.wan_interfaces]  # plans come with their errors; the tests compare messages
    assert plans, [d.format() for d in b.errors]
    return b, plans


def _with_ipv6(plan: DevicePlan) -> DevicePlan:
    """The plan with one more match on the first journey: an IPv6 prefix (every platform must answer it)."""
    first = plan.markings[0]
    v6 = PlanMatch("tcp", "ipv6", (), ("2001:db8:18::/48",), (), ((443, 443),), None)
    marked = dataclasses.replace(first, matches=(*first.matches, v6))
    return dataclasses.replace(plan, markings=(marked, *plan.markings[1:]))


def _says_whose(message: str, platform: str, who: str, what: str) -> str | None:
    """None when ``message`` states ``who`` owns the limit on ``what`` the way this issue asks, else why not."""
    ours = f"qoectl's {platform} renderer does not support "
    if who == QOECTL:
        if ours not in message or " yet" not in message:
            return f"qoectl's limit on {what} is worded as the device's: {message!r}"
    elif "qoectl's" in message:
        return f"a device limit on {what} is worded as qoectl's: {message!r}"
    return None


@pytest.mark.parametrize("platform", sorted(MISSING))
def test_capability_messages_say_whose_limit(platform: str) -> None:
    b, plans = _plans(platform)
    renderer = get_renderer(platform)
    assert renderer is not None
    problems: list[str] = []
    seen: set[str] = set()
    for plan in plans:
        dev = next(d for d in b.policy.devices if d.name == plan.device)
        errors, notes = check_plan(_with_ipv6(plan), renderer, dev, b.policy)
        for capability, (who, _) in MISSING[platform].items():
            text = CAPABILITY_TEXT[capability]
            for message in [d.message for d in errors] + list(notes):
                if text in message:
                    seen.add(capability)
                    problem = _says_whose(message, platform, who, text)
                    if problem:
                        problems.append(problem)
    assert not problems, "\n".join(sorted(set(problems)))
    if base.IPV6 not in renderer.capabilities:
        assert base.IPV6 in seen, f"{platform}: the IPv6 match was not reported"


def _tight(renderer: Renderer, fields: set[str]) -> Renderer:
    """The same renderer with every limit in ``fields`` set so that the example exceeds it."""
    tight: dict[str, Any] = {
        "max_classes": 1,
        "max_strict_classes": 0,
        "min_bandwidth_pct": 60.0,
        "sla_latency_ms": (0.0, 0.001),
        "sla_jitter_ms": (0.0, 0.001),
        "sla_loss_pct": (0.0, 0.0),
        "min_shape_kbps": 10**12,
        "max_shape_kbps": 1,
    }
    limits = dataclasses.replace(renderer.limits, **{f: tight[f] for f in fields})
    tightened: Renderer = type(f"Tight{type(renderer).__name__}", (type(renderer),), {"limits": limits})()
    return tightened


# Which limit a message is about, by the words it must contain.
LIMIT_WORDS = {
    "max_classes": " queues",
    "max_strict_classes": "strict-priority classes",
    "min_bandwidth_pct": "%",
    "sla_latency_ms": "SLA latency threshold",
    "sla_jitter_ms": "SLA jitter threshold",
    "sla_loss_pct": "SLA loss threshold",
    "min_shape_kbps": "shape",
    "max_shape_kbps": "shape",
}


@pytest.mark.parametrize("platform", sorted(LIMITS))
def test_limit_messages_say_whose_limit(platform: str) -> None:
    b, plans = _plans(platform)
    real = get_renderer(platform)
    assert real is not None
    problems: list[str] = []
    for name, (who, _) in LIMITS[platform].items():
        renderer = _tight(real, {name})
        found = []
        for plan in plans:
            dev = next(d for d in b.policy.devices if d.name == plan.device)
            untight, _ = check_plan(plan, real, dev, b.policy)
            before = {d.message for d in untight}
            errors, _ = check_plan(plan, renderer, dev, b.policy)
            found += [d.message for d in errors if d.message not in before and LIMIT_WORDS[name] in d.message]
        assert found, f"{platform}: exceeding {name} produced no message"
        problems += [p for m in found if (p := _says_whose(m, platform, who, name))]
    assert not problems, "\n".join(sorted(set(problems)))


def test_ipv6_on_cisco_sdwan_is_reported_as_qoectls_limit(tmp_path: Path) -> None:
    """End to end, as a user sees it: qoectl validate names the renderer, not the edge, and where Cisco documents it."""
    repo = PolicyRepo.standard(journeys=False)
    repo.files["inventory/sites.yaml"] = [
        inventory("lab-sites", sites=[site("branch-1")], transports=[transport("mpls", 20, 2, 0.01)])
    ]
    repo.set_devices(
        [device("edge1", "cisco_sdwan", "branch-1", interfaces=[wan("ge0/0", 20000, "mpls"), lan("ge0/1")])]
    )
    repo.add_journey(interactive_journey("ipv6-app", prefix="2001:db8:18::/48"))
    root = repo.write(tmp_path / "policies")
    found = [d for d in build(root).errors if "IPv6" in d.message]
    assert len(found) == 1, [d.format() for d in build(root).errors]
    assert found[0].message.startswith("qoectl's cisco_sdwan renderer does not support matching IPv6 prefixes yet")
    assert "17.9.1a" in found[0].hint and found[0].location.file.endswith("ipv6-app.yaml")
    qoectl = Path(sys.executable).with_name("qoectl")
    run = subprocess.run([str(qoectl), "validate", str(root)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "qoectl's cisco_sdwan renderer does not support matching IPv6 prefixes yet" in run.stdout + run.stderr
    assert "cannot express" not in run.stdout + run.stderr
