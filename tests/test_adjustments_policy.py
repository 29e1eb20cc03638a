"""``kind: Adjustments``: read like any policy, compiled on top of the journeys, validated at each entry's line.

What is checked is what reaches the device plan (rates, guarantees, classes, matches) and where a refused
entry is reported, never the wording of a config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.errors import Diagnostic
from controller.model import BandwidthChange, ShaperChange, StrictPriorityChange
from controller.pipeline import Build, build
from tests.policy_builder import PolicyRepo, document, interactive_journey, lan, voice_journey, wan

ADJ = "adjustments/loop.yaml"
TIME = "2025-05-01T10:00:00Z"


def entry(change: str, reason: str = "test", **fields: Any) -> dict[str, Any]:
    return {change: fields, "reason": reason, "measurements": {"one_way_delay_p50_ms": 80.0}, "time": TIME}


def repo_with(
    *entries: dict[str, Any], min_kbps: int | None = 8000, voice_loop: dict[str, Any] | None = None
) -> PolicyRepo:
    """The standard lab, hq-rtr1's wan0 with a shaper range, voice with loop limits, and an Adjustments doc."""
    repo = PolicyRepo.standard(journeys=False)
    devices = repo.devices()
    uplink = wan("wan0", 20000, "mpls")
    if min_kbps is not None:
        uplink["min_kbps"] = min_kbps
    devices[1]["interfaces"] = [uplink, lan("lan0", trust_dscp=False)]
    repo.set_devices(devices)
    repo.add_journey(voice_journey("voice", loop=voice_loop or {"max_kbps": 2400}))
    repo.add_journey(interactive_journey("crm-web", priority="high", loop={"max_kbps": 3000, "strict_priority": True}))
    repo.add(ADJ, document("Adjustments", "qoectl-loop", {"entries": list(entries)}))
    return repo


def built(repo: PolicyRepo, tmp_path: Path) -> Build:
    return build(repo.write(tmp_path / "repo"))


def errors_at(result: Build) -> list[tuple[str, int, str]]:
    return [(Path(d.location.file).name, d.location.line, d.field) for d in result.errors]


def alloc(result: Build, device: str, iface: str, class_name: str) -> Any:
    plan = result.plan(device)
    assert plan is not None
    found = next(i for i in plan.interfaces if i.name == iface).allocation(class_name)
    assert found is not None
    return found


def test_entries_are_read_into_the_model_in_file_order(tmp_path: Path) -> None:
    result = built(
        repo_with(
            entry("shaper", device="hq-rtr1", interface="wan0", kbps=15000),
            entry("bandwidth", journey="voice", device="hq-rtr1", kbps=1200),
            entry("strict_priority", journey="crm-web"),
        ),
        tmp_path,
    )
    assert result.ok, [d.format() for d in result.errors]
    changes = [a.change for a in result.policy.adjustments]
    assert changes == [
        ShaperChange("hq-rtr1", "wan0", 15000),
        BandwidthChange("voice", "hq-rtr1", 1200.0),
        StrictPriorityChange("crm-web"),
    ]
    first = result.policy.adjustments[0]
    assert first.document == "qoectl-loop"
    assert dict(first.measurements) == {"one_way_delay_p50_ms": 80.0}
    assert first.time == TIME
    voice = result.policy.journey("voice")
    assert voice is not None and voice.loop.max_kbps == 2400
    wan0 = next(d for d in result.policy.devices if d.name == "hq-rtr1").interfaces[0]
    assert (wan0.min_kbps, wan0.max_kbps, wan0.shaper_range) == (8000, None, (8000, 20000))


def test_a_shaper_adjustment_shapes_the_link_and_allocates_on_the_new_rate(tmp_path: Path) -> None:
    before = built(repo_with(), tmp_path / "a")
    after = built(repo_with(entry("shaper", device="hq-rtr1", interface="wan0", kbps=15000)), tmp_path / "b")
    assert after.ok, [d.format() for d in after.errors]
    plan = after.plan("hq-rtr1")
    assert plan is not None
    iface = plan.wan_interfaces[0]
    assert (iface.link_kbps, iface.shape_kbps) == (15000, 15000)
    # crm-web is 5 % of the link: its guarantee follows the rate; voice is absolute (10 x 90 kbps, policed)
    assert alloc(before, "hq-rtr1", "wan0", "low-latency-data").guaranteed_kbps == 1000
    assert alloc(after, "hq-rtr1", "wan0", "low-latency-data").guaranteed_kbps == 750
    assert alloc(after, "hq-rtr1", "wan0", "telephony").police_kbps == 900
    assert alloc(after, "hq-rtr1", "wan0", "standard").max_kbps == 15000
    # the other router is untouched
    assert before.plan("br1-rtr1") == after.plan("br1-rtr1")


def test_a_bandwidth_adjustment_changes_the_guarantee_on_that_device_only(tmp_path: Path) -> None:
    result = built(repo_with(entry("bandwidth", journey="voice", device="hq-rtr1", kbps=1500)), tmp_path)
    assert result.ok, [d.format() for d in result.errors]
    assert alloc(result, "hq-rtr1", "wan0", "telephony").police_kbps == 1500
    assert alloc(result, "br1-rtr1", "GigabitEthernet0/0/0", "telephony").police_kbps == 900


def test_strict_priority_moves_the_journey_into_the_strict_class_on_every_device(tmp_path: Path) -> None:
    result = built(repo_with(entry("strict_priority", journey="crm-web")), tmp_path)
    assert result.ok, [d.format() for d in result.errors]
    for plan in result.plans:
        rule = next(r for r in plan.markings if r.journey == "crm-web")
        assert (rule.class_name, rule.dscp_name) == ("telephony", "ef")
        assert "crm-web" in plan.qos_class("telephony").journeys
        assert plan.qos_class("telephony").strict
        link = plan.wan_interfaces[0].name
        assert alloc(result, plan.device, link, "telephony").police_kbps == 900 + 1000  # voice + crm-web's 5 %
    # the policy stays as written: only the plans change
    crm = result.policy.journey("crm-web")
    assert crm is not None and crm.service_class is None


def test_edge_marking_drops_the_arrival_dscp_condition_on_that_device_only(tmp_path: Path) -> None:
    repo = repo_with(entry("marking", journey="marked", device="hq-rtr1"))
    repo.add_journey(
        voice_journey(
            "marked",
            traffic={"match": [{"protocol": "udp", "destination_ports": [5004], "dscp": "ef"}]},
            flows=2,
        )
    )
    result = built(repo, tmp_path)
    assert result.ok, [d.format() for d in result.errors]

    def matches(device: str) -> list[int | None]:
        plan = result.plan(device)
        assert plan is not None
        return [m.dscp for r in plan.markings if r.journey == "marked" for m in r.matches]

    assert matches("hq-rtr1") == [None]
    assert matches("br1-rtr1") == [46]


# --------------------------------------------------------------------------- refused entries, at their lines


def test_a_shaper_outside_the_inventory_range_is_an_error_at_its_kbps(tmp_path: Path) -> None:
    repo = repo_with(
        entry("shaper", device="hq-rtr1", interface="wan0", kbps=7000),
        entry("shaper", device="br1-rtr1", interface="GigabitEthernet0/0/0", kbps=19000),
        entry("shaper", device="hq-rtr1", interface="lan0", kbps=19000),
    )
    result = built(repo, tmp_path)
    lines = [repo.line_of(ADJ, "kbps: 7000"), repo.line_of(ADJ, "kbps: 19000"), repo.line_of(ADJ, "interface: lan0")]
    assert errors_at(result) == [
        ("loop.yaml", lines[0], "spec.entries[0].shaper.kbps"),
        ("loop.yaml", lines[1], "spec.entries[1].shaper.kbps"),
        ("loop.yaml", lines[2], "spec.entries[2].shaper.interface"),
    ]
    messages = [d.message for d in result.errors]
    assert "below its min_kbps 8000" in messages[0]
    assert "no min_kbps" in messages[1]  # br1-rtr1 states no range: the loop may not lower it


def test_a_guarantee_beyond_the_journeys_loop_limits_is_an_error(tmp_path: Path) -> None:
    repo = repo_with(
        entry("bandwidth", journey="voice", device="hq-rtr1", kbps=2500),  # above loop.max_kbps 2400
        entry("bandwidth", journey="crm-web", device="hq-rtr1", kbps=500),  # below its bandwidth, no loop.min_kbps
        entry("bandwidth", journey="voice", device="nowhere", kbps=1000),
    )
    result = built(repo, tmp_path)
    assert [f for _, _, f in errors_at(result)] == [
        "spec.entries[0].bandwidth.kbps",
        "spec.entries[1].bandwidth.kbps",
        "spec.entries[2].bandwidth.device",
    ]
    assert "loop.max_kbps 2400" in result.errors[0].message
    assert "no loop.min_kbps" in result.errors[1].message


def test_strict_priority_needs_the_journeys_consent(tmp_path: Path) -> None:
    repo = repo_with(entry("strict_priority", journey="voice"), entry("strict_priority", journey="crm-web"))
    repo.docs("journeys/crm-web.yaml")[0]["spec"]["loop"] = {"max_kbps": 3000}
    result = built(repo, tmp_path)
    assert [f for _, _, f in errors_at(result)] == ["spec.entries[1].strict_priority.journey"]
    # voice is in the strict class already: a warning, not an error
    assert [d.field for d in result.diagnostics if d.severity == "warning"] == [
        "spec.entries[0].strict_priority.journey"
    ]


def test_an_adjustment_that_breaks_the_priority_cap_is_an_error_at_its_line(tmp_path: Path) -> None:
    # voice 900 kbps strict on a 20 Mbit/s link; moving crm-web (5 % = 1000 kbps) in is fine (9.5 %), but shaping
    # the link to 5 Mbit/s then puts 900 + 250 kbps = 23 % ... still fine; a 2400 kbps voice guarantee on top
    # takes strict priority to (2400 + 250) / 5000 = 53 %: that entry is the one blamed.
    repo = repo_with(
        entry("strict_priority", journey="crm-web"),
        entry("shaper", device="hq-rtr1", interface="wan0", kbps=5000),
        entry("bandwidth", journey="voice", device="hq-rtr1", kbps=2400),
        min_kbps=4000,
    )
    result = built(repo, tmp_path)
    line = repo.line_of(ADJ, "kbps: 2400")
    assert errors_at(result) == [("loop.yaml", line, "spec.entries[2].bandwidth.kbps")]
    assert "above the 33 % priority cap" in result.errors[0].message
    assert "53.0 %" in result.errors[0].message


def test_an_adjustment_that_takes_a_link_over_what_it_can_guarantee_is_an_error(tmp_path: Path) -> None:
    repo = repo_with(entry("shaper", device="hq-rtr1", interface="wan0", kbps=1000), min_kbps=900)
    repo.add_journey(interactive_journey("erp", port=8443, bandwidth={"per_flow_kbps": 100, "concurrent_flows": 1}))
    result = built(repo, tmp_path)
    # voice 900 + crm-web 50 + erp 100 = 1050 kbps on a 1000 kbps link: the shaper entry is blamed (the strict
    # cap too: 900 kbps of 1000 is 90 %)
    assert sorted({f for _, _, f in errors_at(result)}) == ["spec.entries[0].shaper.kbps"]
    texts = " ".join(d.message for d in result.errors)
    assert "priority cap" in texts and "can be guaranteed" in texts


def test_a_second_entry_for_the_same_thing_is_an_error(tmp_path: Path) -> None:
    repo = repo_with(
        entry("shaper", device="hq-rtr1", interface="wan0", kbps=15000),
        entry("shaper", device="hq-rtr1", interface="wan0", kbps=16000),
    )
    result = built(repo, tmp_path)
    assert [f for _, _, f in errors_at(result)] == ["spec.entries[1].shaper"]
    assert result.errors[0].related[0].line == repo.line_of(ADJ, "- shaper:")


def test_edge_marking_that_would_claim_another_journeys_traffic_is_an_error(tmp_path: Path) -> None:
    repo = repo_with(entry("marking", journey="marked", device="hq-rtr1"))
    ports = {"protocol": "udp", "destination_ports": [5004]}
    repo.add_journey(voice_journey("marked", traffic={"match": [{**ports, "dscp": "ef"}]}, flows=2))
    repo.add_journey(interactive_journey("other", traffic={"match": [{**ports, "dscp": "af21"}]}))
    result = built(repo, tmp_path)
    assert [f for _, _, f in errors_at(result)] == ["spec.entries[0].marking.journey"]
    assert "other" in result.errors[0].message


def test_a_refused_entry_is_not_compiled(tmp_path: Path) -> None:
    """Only the entry's own error: the refused shaper does not also starve the link's classes."""
    repo = repo_with(entry("shaper", device="hq-rtr1", interface="wan0", kbps=100), min_kbps=None)
    result = built(repo, tmp_path)
    assert all(Path(d.location.file).name == "loop.yaml" for d in result.errors), [
        Diagnostic.format(d) for d in result.errors
    ]
