"""Rendered IOS-XE configs parsed with ciscoconfparse2 and checked as a router would see them.

The checks read only the config text and the policy YAML, never the compiled
plan: every class used in a policy-map is defined, every service-policy and
ACL reference resolves, nested shapers point at the queuing policy, bandwidth
remaining percents add up to 100, strict classes are policed LLQ, and the
policer equals what the journeys asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ciscoconfparse2 import CiscoConfParse

from controller.pipeline import Build, build, render_plan
from tests.policy_builder import PolicyRepo, device, lan, many_journeys_repo, service_classes, voice_journey, wan

IOS_DSCP_WORDS = (
    {f"af{c}{d}" for c in range(1, 5) for d in range(1, 4)} | {f"cs{i}" for i in range(1, 8)} | {"ef", "default"}
)


@dataclass
class Parsed:
    """The objects of one config, by kind and name."""

    text: str
    class_maps: dict[str, list[str]] = field(default_factory=dict)
    policy_maps: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # policy -> class -> lines
    acls: dict[str, list[str]] = field(default_factory=dict)
    acl_family: dict[str, str] = field(default_factory=dict)
    interfaces: dict[str, list[str]] = field(default_factory=dict)


def parse(text: str) -> Parsed:
    conf = CiscoConfParse(text.splitlines(), syntax="ios", loguru=False)
    out = Parsed(text)

    def names(kind: str) -> list[str]:
        seen = [o.text.split()[-1] for o in conf.find_objects(rf"^{kind}\s")]
        assert len(seen) == len(set(seen)), f"{kind} defined twice: {sorted(seen)}"
        return seen

    names("class-map")
    names("policy-map")
    for obj in conf.find_objects(r"^class-map\s"):
        assert obj.text.startswith("class-map match-any "), obj.text
        out.class_maps[obj.text.split()[-1]] = [c.text.strip() for c in obj.children]
    for obj in conf.find_objects(r"^policy-map\s"):
        classes: dict[str, list[str]] = {}
        for child in obj.children:
            m = re.fullmatch(r" class (\S+)", child.text)
            assert m, f"unexpected line under {obj.text}: {child.text!r}"
            assert m.group(1) not in classes, f"class {m.group(1)} twice in {obj.text}"
            classes[m.group(1)] = [c.text.strip() for c in child.children]
        out.policy_maps[obj.text.split()[-1]] = classes
    for obj in conf.find_objects(r"^(ip access-list extended|ipv6 access-list)\s"):
        name = obj.text.split()[-1]
        assert name not in out.acls, f"ACL {name} defined twice"
        out.acls[name] = [c.text.strip() for c in obj.children]
        out.acl_family[name] = "ipv6" if obj.text.startswith("ipv6") else "ipv4"
    for obj in conf.find_objects(r"^interface\s"):
        out.interfaces[obj.text.split(None, 1)[1]] = [c.text.strip() for c in obj.children]
    return out


def check_config(p: Parsed) -> None:
    """Everything that must hold for any IOS-XE config qoectl renders."""
    lines = p.text.splitlines()
    assert lines[-1] == "end" and lines[0].startswith("! qoectl:")
    # Classes used by policy-maps exist; every service-policy names a policy-map; ACL references resolve.
    for policy, classes in p.policy_maps.items():
        for cls in classes:
            assert cls == "class-default" or cls in p.class_maps, f"{policy}: class {cls} has no class-map"
    for cmap, body in p.class_maps.items():
        for line in body:
            if line.startswith("match access-group name "):
                assert line.split()[-1] in p.acls, f"class-map {cmap}: no ACL {line.split()[-1]}"
            else:
                m = re.fullmatch(r"match dscp (.+)", line)
                assert m, f"class-map {cmap}: unexpected {line!r}"
                values = m.group(1).split()
                assert 1 <= len(values) <= 8, f"{cmap}: more than 8 DSCP values on one match line"
                assert all(_dscp_ok(v) for v in values), f"{cmap}: not an IOS-XE DSCP: {line!r}"
    references = [
        line.split()[-1] for body in p.interfaces.values() for line in body if line.startswith("service-policy ")
    ]
    references += [
        line.split()[-1]
        for classes in p.policy_maps.values()
        for body in classes.values()
        for line in body
        if line.startswith("service-policy ")
    ]
    for ref in references:
        assert ref in p.policy_maps, f"service-policy {ref} is not defined"
    for policy, classes in p.policy_maps.items():
        for body in classes.values():
            for line in body:
                if line.startswith("set dscp "):
                    assert _dscp_ok(line.split()[-1]), f"{policy}: {line!r}"
    # ACLs: numbered permits, the right address family, IOS-XE DSCP words.
    for name, body in p.acls.items():
        assert body, f"ACL {name} is empty"
        for line in body:
            if p.acl_family[name] == "ipv4":
                assert re.fullmatch(r"\d+ permit (ip|udp|tcp|icmp) .+", line), line
                assert ":" not in line, f"IPv6 address in IPv4 ACL {name}: {line}"
            else:
                assert re.fullmatch(r"sequence \d+ permit (ipv6|udp|tcp|icmp) .+", line), line
                assert not re.search(r"\d+\.\d+\.\d+\.\d+", line), f"IPv4 address in IPv6 ACL {name}: {line}"
            if " dscp " in line:
                assert _dscp_ok(line.split(" dscp ")[1].split()[0]), line
    # Queuing and shaping policies.
    for policy, classes in p.policy_maps.items():
        if "shape average" in " ".join(classes.get("class-default", [])):
            body = classes["class-default"]
            assert list(classes) == ["class-default"], f"shaper {policy} has more than class-default"
            assert re.fullmatch(r"shape average \d+", body[0])
            nested = [line.split()[-1] for line in body if line.startswith("service-policy ")]
            assert len(nested) == 1 and _is_queuing(p.policy_maps[nested[0]]), f"{policy} must nest a queuing policy"
            continue
        if not _is_queuing(classes):
            continue
        assert list(classes)[-1] == "class-default"
        remaining = 0
        for cls, body in classes.items():
            if any(line.startswith("priority") for line in body):
                assert re.fullmatch(r"priority level [12]", body[0]), f"{policy} {cls}: {body}"
                police = [line for line in body if line.startswith("police ")]
                assert len(police) == 1 and re.fullmatch(r"police cir \d+", police[0]), f"{policy} {cls}: {body}"
                assert int(police[0].split()[-1]) >= 8000, "IOS police cir starts at 8000 bps"
                assert not any(line.startswith("bandwidth") for line in body)
            else:
                bw = [line for line in body if line.startswith("bandwidth remaining percent ")]
                assert len(bw) == 1, f"{policy} {cls}: {body}"
                assert 1 <= int(bw[0].split()[-1]) <= 100
                remaining += int(bw[0].split()[-1])
                assert any(line == "fair-queue" or line.startswith("queue-limit ") for line in body)
        assert remaining == 100, f"{policy}: bandwidth remaining percents sum to {remaining}"


def _dscp_ok(value: str) -> bool:
    return value in IOS_DSCP_WORDS or (value.isdigit() and 0 <= int(value) <= 63)


def _is_queuing(classes: dict[str, list[str]]) -> bool:
    return any(line.startswith(("priority", "bandwidth")) for body in classes.values() for line in body)


def _output_policy(p: Parsed, iface: str) -> str:
    policies = [line.split()[-1] for line in p.interfaces[iface] if line.startswith("service-policy output ")]
    assert len(policies) == 1, f"{iface}: {p.interfaces[iface]}"
    return policies[0]


def _strict_class(p: Parsed) -> str:
    """The class-map that matches EF (telephony), found from the config itself."""
    return next(name for name, body in p.class_maps.items() if "match dscp ef" in body)


def check_against_inventory(p: Parsed, dev: dict[str, object], voice_kbps: float) -> None:
    """Every interface got its policy; sub-rate links are shaped to the contract; LLQ polices the voice rate."""
    for iface in dev["interfaces"]:  # type: ignore[attr-defined]
        name = iface["name"]
        assert name in p.interfaces, f"{name} has no policy"
        if iface["role"] == "lan":
            pol = [line for line in p.interfaces[name] if line.startswith("service-policy input ")]
            assert len(pol) == 1
            marking = p.policy_maps[pol[0].split()[-1]]
            assert all(cls == "class-default" or cls in p.class_maps for cls in marking)
            assert iface.get("trust_dscp", True) != ("class-default" in marking), "untrusted LANs re-mark the rest"
            continue
        top = p.policy_maps[_output_policy(p, name)]
        port = iface.get("port_speed_kbps")
        if port and port > iface["bandwidth_kbps"]:
            body = top["class-default"]
            assert body[0] == f"shape average {iface['bandwidth_kbps'] * 1000}", body
            queuing = p.policy_maps[body[1].split()[-1]]
        else:
            assert _is_queuing(top), f"{name}: a full-rate link gets the queuing policy directly"
            queuing = top
        strict = queuing[_strict_class(p)]
        assert strict[0] == "priority level 1"
        assert strict[1] == f"police cir {max(8000, round(voice_kbps * 1000))}"


def _render_ios(result: Build) -> dict[str, str]:
    assert result.ok, [d.format() for d in result.errors]
    return {p.device: render_plan(p)["qos.cfg"] for p in result.plans if p.platform == "cisco_iosxe"}


# --------------------------------------------------------------------------- the cases


def test_example_policies(example_build: Build) -> None:
    configs = _render_ios(example_build)
    assert configs, "the example has IOS-XE devices"
    for name, text in configs.items():
        parsed = parse(text)
        check_config(parsed)
        assert parsed.policy_maps and parsed.class_maps and parsed.acls, name


@pytest.mark.parametrize(
    "links",
    [
        [(50_000, 1_000_000), (100_000, None), (20_000, 100_000), (1_000_000, 1_000_000)],
        [(2_000, 10_000)],
        [(10_000, None), (10_000, None), (10_000, None)],
    ],
    ids=["mixed-sub-rate", "one-small-shaped", "three-full-rate"],
)
def test_many_journeys_and_wan_links(tmp_path: Path, links: list[tuple[int, int | None]]) -> None:
    repo = many_journeys_repo(24, links)
    result = build(repo.write(tmp_path))
    text = _render_ios(result)["big-rtr1"]
    parsed = parse(text)
    check_config(parsed)
    dev = repo.devices()[0]
    check_against_inventory(parsed, dev, voice_kbps=5 * 90)
    # One journey class-map per journey, each with its own ACLs.
    journeys = [d[0]["metadata"]["name"] for rel, d in repo.files.items() if rel.startswith("journeys/")]
    assert {f"QOECTL-J-{n.upper()}" for n in journeys} <= set(parsed.class_maps)
    assert len(parsed.policy_maps) == 2 + len(links) + sum(1 for bw, port in links if port and port > bw)


def test_strict_class_policer_never_below_ios_minimum(tmp_path: Path) -> None:
    repo = PolicyRepo.standard(journeys=False)
    repo.add_journey(voice_journey("tiny", flows=1, per_flow_kbps=2))
    text = _render_ios(build(repo.write(tmp_path)))["br1-rtr1"]
    parsed = parse(text)
    check_config(parsed)
    check_against_inventory(parsed, repo.devices()[0], voice_kbps=2)  # 2 kbit/s -> police cir 8000


def test_lower_effort_dscp_is_written_as_a_number(tmp_path: Path) -> None:
    """IOS-XE has no 'le' keyword: LE (DSCP 1) must be written '1' (it used to be 'le')."""
    repo = PolicyRepo.standard()
    repo.add_journey(voice_journey("updates", port=8443, target={"bulk": {"scavenger": True}}, priority="scavenger",
                                   bandwidth={"share_pct": 1}))  # fmt: skip
    text = _render_ios(build(repo.write(tmp_path)))["br1-rtr1"]
    parsed = parse(text)
    check_config(parsed)
    assert parsed.class_maps["QOECTL-LOW-PRIORITY-DATA"] == ["match dscp 1 cs1"]
    assert parsed.policy_maps["QOECTL-MARK"]["QOECTL-J-UPDATES"] == ["set dscp 1"]
    assert not re.search(r"\ble\b", text)


def test_names_that_would_collide_stay_apart(tmp_path: Path) -> None:
    """A class named 'j-voice' next to a journey 'voice' and interfaces Gi0/0/0.1 and Gi0/0/0/1 (all legal)."""
    repo = PolicyRepo.standard()
    many = [{"name": "j-voice", "dscp": [2, 3, 4, 5, 6, 7, 9, 11, 13]}]  # 9 unused values: two match lines
    repo.add("classes.yaml", service_classes(many))
    repo.add_journey(voice_journey("rt", port=7000, service_class="j-voice", priority="high"))
    devices = repo.devices()
    devices[0]["interfaces"] = [
        wan("GigabitEthernet0/0/0.1", 10_000, "mpls", port_speed_kbps=1_000_000),
        wan("GigabitEthernet0/0/0/1", 10_000, "internet"),
        lan("GigabitEthernet0/1/0"),
    ]
    repo.set_devices(devices)
    text = _render_ios(build(repo.write(tmp_path)))["br1-rtr1"]
    parsed = parse(text)
    check_config(parsed)
    assert "QOECTL-J-VOICE" in parsed.class_maps and "QOECTL-C-J-VOICE" in parsed.class_maps
    assert parsed.class_maps["QOECTL-J-VOICE"] == ["match access-group name QOECTL-J-VOICE"]
    assert len(parsed.class_maps["QOECTL-C-J-VOICE"]) == 2
    outputs = {_output_policy(parsed, i) for i in ("GigabitEthernet0/0/0.1", "GigabitEthernet0/0/0/1")}
    assert len(outputs) == 2, "two interfaces must not share one generated policy-map name"


def test_two_platforms_in_one_policy_only_ios_gets_ios_config(tmp_path: Path) -> None:
    repo = PolicyRepo.standard()
    repo.set_devices([*repo.devices(), device("br1-rtr2", "cisco_iosxe", "branch-1")])
    configs = _render_ios(build(repo.write(tmp_path)))
    assert sorted(configs) == ["br1-rtr1", "br1-rtr2"]
    for text in configs.values():
        check_config(parse(text))
