"""Arista EOS renderer: an independent ciscoconfparse2 read of the output, queue order, maps and limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from ciscoconfparse2 import CiscoConfParse

from controller.configtext.meaning import ParseError
from controller.pipeline import Build, build, render_plan
from controller.platforms.arista_eos import parser as eos_parser
from tests.test_junos import SITES, bulk_journey, device_doc, voice_journey, write_repo

DEVICE = "hq-dcsw1"


@pytest.fixture(scope="module")
def cfg(example_build: Build) -> str:
    plan = example_build.plan(DEVICE)
    assert plan is not None and plan.platform == "arista_eos"
    return render_plan(plan)["qos.cfg"]


def _conf(cfg: str) -> CiscoConfParse:
    return CiscoConfParse(cfg.splitlines(), syntax="ios")


def _block(conf: CiscoConfParse, head: str) -> list[str]:
    (obj,) = conf.find_objects(rf"^{head}$")
    return [c.text.strip() for c in obj.all_children if c.text.strip() not in ("", "!")]


def test_every_dscp_is_mapped_to_exactly_one_traffic_class_and_queue(cfg: str) -> None:
    seen: list[int] = []
    tcs = set()
    for obj in _conf(cfg).find_objects(r"^qos map dscp "):
        words = obj.text.split()
        seen += [int(w) for w in words[3 : words.index("to")]]
        tcs.add(int(words[-1]))
    assert sorted(seen) == list(range(64))
    queues = {int(o.text.split()[3]) for o in _conf(cfg).find_objects(r"^qos map traffic-class ")}
    assert tcs == queues


def test_chain_closes_and_means_the_plan(cfg: str) -> None:
    t = eos_parser.parse({"qos.cfg": cfg})
    assert t["VOICE"].strict and t["VOICE"].dscp == 46
    assert t["VOICE"].share("Ethernet49/1") == pytest.approx(0.18)  # 1800 kbps of the 1 Gbit/s shaped link
    assert not t["BACKUPS"].strict and t["BACKUPS"].dscp == 14


def test_wan_port_is_shaped_trusted_and_strict_queues_sit_above_round_robin(cfg: str) -> None:
    lines = _block(_conf(cfg), "interface Ethernet49/1")
    assert "qos trust dscp" in lines and "shape rate 1000000 kbps" in lines
    conf = _conf(cfg)
    (intf,) = conf.find_objects(r"^interface Ethernet49/1$")
    strict, rr, percents = [], [], []
    for q in intf.children:
        if not q.text.strip().startswith("tx-queue "):
            continue
        body = [c.text.strip() for c in q.children]
        n = int(q.text.split()[1])
        if "no priority" in body:
            rr.append(n)
            percents += [int(b.split()[-1]) for b in body if b.startswith("bandwidth percent ")]
        else:
            assert "priority strict" in body and any(b.startswith("shape rate ") for b in body), body
            strict.append(n)
    assert strict and rr and max(rr) < min(strict)
    assert sum(percents) == 100 and 0 in rr


def test_marking_class_maps_match_one_acl_each_with_the_journey_match(cfg: str) -> None:
    conf = _conf(cfg)
    assert _block(conf, "class-map type qos match-any QOECTL-J-VOICE") == ["match ip access-group QOECTL-J-VOICE"]
    assert _block(conf, "ip access-list QOECTL-J-VOICE") == ["10 permit udp any 10.0.0.0/8 range 16384 32767"]
    assert _block(conf, "ipv6 access-list QOECTL-J6-CALL-SIGNALING")[0] == "10 permit tcp any any eq 5060"


def test_untrusted_port_is_remarked_by_an_explicit_match_all_class(cfg: str) -> None:
    conf = _conf(cfg)
    assert _block(conf, "interface Ethernet2") == [
        "no qos trust",
        "service-policy type qos input QOECTL-MARK-UNTRUSTED",
    ]
    policy = _block(conf, "policy-map type quality-of-service QOECTL-MARK-UNTRUSTED")
    assert policy[-6:] == [
        "class QOECTL-ANY",
        "set dscp 0",
        "set traffic-class 0",
        "class QOECTL-ANY6",
        "set dscp 0",
        "set traffic-class 0",
    ]
    assert _block(conf, "ip access-list QOECTL-ANY") == ["10 permit ip any any"]


def test_parser_rejects_a_strict_queue_below_a_round_robin_one(cfg: str) -> None:
    broken = cfg.replace("   tx-queue 0\n      no priority\n", "   tx-queue 0\n")
    assert broken != cfg
    with pytest.raises(ParseError, match="strict tx-queue sits below a round-robin one"):
        eos_parser.parse({"qos.cfg": broken})


def test_parser_rejects_a_dangling_acl(cfg: str) -> None:
    broken = cfg.replace("ip access-list QOECTL-J-VOICE\n", "ip access-list SOMETHING-ELSE\n")
    with pytest.raises(ParseError, match="QOECTL-J-VOICE"):
        eos_parser.parse({"qos.cfg": broken})


def test_parser_sees_a_changed_share(cfg: str) -> None:
    before = eos_parser.parse({"qos.cfg": cfg})["CRM-WEB"].share("Ethernet49/1")
    changed = cfg.replace("      bandwidth percent 25\n", "      bandwidth percent 40\n", 1)
    assert changed != cfg
    after = eos_parser.parse({"qos.cfg": changed})["CRM-WEB"].share("Ethernet49/1")
    assert after is not None and before is not None and after > before + 10


def test_aqm_and_fair_queue_degrade_to_notes(example_build: Build) -> None:
    plan = example_build.plan(DEVICE)
    assert plan is not None
    # EOS has tx-queue WRED/ECN; qoectl leaves queues tail-drop, so the note says it is qoectl's limit.
    ours = "qoectl's arista_eos renderer does not support active queue management"
    assert any(n.startswith(ours) for n in plan.notes)
    assert any(n.startswith("flow-fair queuing") and "arista_eos" in n for n in plan.notes)


def test_ipv6_journey_gets_its_own_acl_and_class(tmp_path: Path) -> None:
    journey = bulk_journey("v6-backup", 8400, 10).replace(
        "{protocol: tcp, destination_ports: [8400]}",
        "{protocol: tcp, destination_ports: [8400], destination_prefixes: ['2001:db8:50::/48']}",
    )
    root = write_repo(
        tmp_path,
        {
            "inventory/sites.yaml": SITES,
            "inventory/devices.yaml": device_doc("arista_eos", 100_000).replace("xe-0/0/", "Ethernet"),
            "journeys/v6.yaml": journey,
        },
    )
    result = build(root)
    assert result.ok, [d.format() for d in result.errors]
    plan = result.plan("r1")
    assert plan is not None
    cfg = render_plan(plan)["qos.cfg"]
    conf = _conf(cfg)
    assert _block(conf, "ipv6 access-list QOECTL-J6-V6-BACKUP") == ["10 permit tcp any 2001:db8:50::/48 eq 8400"]
    assert not conf.find_objects(r"^ip access-list QOECTL-J-V6-BACKUP$")
    assert eos_parser.parse({"qos.cfg": cfg})["V6-BACKUP"].dscp == 12  # af12: normal priority, bulk class


def test_more_classes_than_tx_queues_is_reported(tmp_path: Path) -> None:
    classes = [
        "network-control",
        "signaling",
        "multimedia-conferencing",
        "real-time-interactive",
        "multimedia-streaming",
        "broadcast-video",
        "oam",
    ]
    docs = {
        "inventory/sites.yaml": SITES,
        "inventory/devices.yaml": device_doc("arista_eos", 100_000).replace("xe-0/0/", "Ethernet"),
        "journeys/voice.yaml": voice_journey("voice", 5004),
    }
    for i, cls in enumerate(classes):
        docs[f"journeys/j{i}.yaml"] = bulk_journey(f"j{i}", 9001 + i, 5, service_class=cls)
    errors = [d.format() for d in build(write_repo(tmp_path, docs)).errors]
    assert any("needs 9 queues" in e and "arista_eos offers 8" in e and "platform" in e for e in errors), errors
