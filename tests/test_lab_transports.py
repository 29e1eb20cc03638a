"""A lab whose routers have two transports: the lab file, the underlay, per-transport health, ``lab degrade``.

The lab-file checks run anywhere; the rest (root) builds a private examples/lab-sdwan and proves by the kernel's
own counters where packets went and that the cross traffic queues in the ISP, not in the routers.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import cli
from controller.lab import control
from controller.lab.config import SINK_RANGE, LabFileError, load_lab, parse_lab
from controller.lab.measure import HEALTH_DSCP, measure
from controller.lab.netns import run
from controller.lab.policy import retarget
from controller.lab.state import new_state
from controller.pipeline import build
from tests.lab.qoelab import requires_lab
from tests.lab.sdwanlab import SDWAN_LAB, SDWAN_POLICY, sdwan_lab

# --------------------------------------------------------------------------- the lab file (no root)


def test_the_sdwan_lab_gives_each_router_two_transports_and_one_default() -> None:
    cfg = load_lab(SDWAN_LAB)
    assert cfg.multi_wan and cfg.default_wan == "internet"
    assert [w.name for w in cfg.wans_of("branch-rtr")] == ["internet", "mpls"]
    assert cfg.wan_of("branch-rtr").name == "internet" and cfg.wan_of("hub-rtr").name == "internet"
    assert cfg.path_wan("branch", "hub").name == "internet"
    assert cfg.wan_by_transport("mpls") is cfg.wan("mpls")
    sinks = [link.sink for w in cfg.wans for link in w.links]
    assert len(set(sinks)) == 4 and all(ipaddress.IPv4Address(s) in SINK_RANGE for s in sinks)
    probes = cfg.transport_probes(3784, HEALTH_DSCP)
    assert {(p.journey, p.source, p.destination, p.destination_address) for p in probes} == {
        ("internet", "branch-rtr", "hub-rtr", "198.18.30.5"),
        ("internet", "hub-rtr", "branch-rtr", "198.18.30.1"),
        ("mpls", "branch-rtr", "hub-rtr", "198.18.31.5"),
        ("mpls", "hub-rtr", "branch-rtr", "198.18.31.1"),
    }
    assert len({p.port for p in probes}) == 4 and all(p.dscp == HEALTH_DSCP for p in probes)


def test_the_single_wan_lab_has_no_transport_probes() -> None:
    cfg = load_lab(SDWAN_LAB.parent.parent / "lab" / "lab.yaml")
    assert not cfg.multi_wan and cfg.transport_probes(3784, HEALTH_DSCP) == ()


def test_lab_policy_aims_each_wan_interface_of_an_edge_at_its_isp(tmp_path: Path) -> None:
    cfg = load_lab(SDWAN_LAB)
    moved = SDWAN_LAB.read_text(encoding="utf-8").replace("198.18.31.", "198.18.41.")  # mpls on other prefixes
    state = new_state(tmp_path, parse_lab(moved, "lab.yaml", SDWAN_LAB.parent), moved, SDWAN_LAB.parent)
    assert state.config.wan("mpls").links[0].isp_address == "198.18.41.2" != cfg.wan("mpls").links[0].isp_address
    result = build(retarget(SDWAN_POLICY, state, tmp_path / "policy"))
    assert result.ok, [d.format() for d in result.errors]
    gateways = {(d.name, i.name): i.gateway for d in result.policy.devices for i in d.interfaces if i.role == "wan"}
    assert gateways == {
        ("branch-rtr", "inet0"): "198.18.30.2",
        ("branch-rtr", "mpls0"): "198.18.41.2",
        ("hub-rtr", "inet0"): "198.18.30.6",
        ("hub-rtr", "mpls0"): "198.18.41.6",
    }


# The bundled two-transport lab with four mistakes put in, each on a line of its own: an unknown default WAN, a
# host LAN in the cross-traffic sinks' range, a router twice on one WAN, a transport two WANs carry.
MISTAKES = (
    ("default_wan: internet", "default_wan: satellite"),
    ("lan: 198.18.10.0/24", "lan: 198.19.255.0/28"),
    (
        "inet0, prefix: 198.18.30.0/30}\n",
        "inet0, prefix: 198.18.30.0/30}\n        - {router: branch-rtr, interface: inet1, prefix: 198.18.30.8/30}\n",
    ),
    ("    - name: mpls\n", "    - name: mpls\n      transport: internet\n"),
)


def test_every_problem_of_a_two_transport_lab_file_is_reported_at_its_line() -> None:
    text = SDWAN_LAB.read_text()
    for old, new in MISTAKES:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    lines = text.splitlines()

    def line_of(words: str) -> int:
        (line,) = [n for n, line in enumerate(lines, 1) if words in line]
        return line

    with pytest.raises(LabFileError) as caught:
        parse_lab(text, "lab.yaml", SDWAN_LAB.parent)
    found = {(d.location.line, d.field): d.message for d in caught.value.diagnostics}
    assert found[(line_of("default_wan: satellite"), "spec.default_wan")] == "unknown WAN 'satellite'"
    assert "198.19.255.0/28 overlaps 198.19.255.0/24" in found[(line_of("lan: 198.19.255.0/28"), "spec.hosts[0].lan")]
    twice = (line_of("interface: inet1"), "spec.wans[0].links[1].router")
    assert found[twice] == "router 'branch-rtr' is on WAN 'internet' twice"
    carried = (line_of("transport: internet"), "spec.wans[1].transport")
    assert found[carried] == "transport 'internet' is carried by WAN 'internet' already"
    assert len(found) == 4, found


# --------------------------------------------------------------------------- the running lab (root)


def _sent_packets(namespace: str, dev: str) -> int:
    """Packets the root qdisc of ``dev`` in ``namespace`` has sent since it was made (the kernel's counter)."""
    out = run(["ip", "netns", "exec", namespace, "tc", "-s", "qdisc", "show", "dev", dev, "root"])
    found = re.search(r"Sent \d+ bytes (\d+) pkt", out)
    assert found, out
    return int(found.group(1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@requires_lab
@pytest.mark.root
def test_transports_are_probed_over_their_own_isp_and_degrade_queues_only_that_one(tmp_path: Path) -> None:
    with sdwan_lab(tmp_path) as lab:
        policy = build(retarget(SDWAN_POLICY, lab.state(), tmp_path / "policy"))
        assert policy.ok
        mpls_ns = lab.state().config.namespace("isp-mpls")
        before = {dev: _sent_packets(mpls_ns, dev) for dev in ("eth0", "eth1")}
        calm = measure(lab.state(), policy, 2.0)
        after = {dev: _sent_packets(mpls_ns, dev) for dev in ("eth0", "eth1")}
        assert len(calm.transports) == 4 and all(t.result.error is None for t in calm.transports), calm.transports
        for t in calm.transports:
            assert t.result.packets_received == t.result.packets_sent == 100
            assert t.result.dscp_seen == ((HEALTH_DSCP, 100),)
        # mpls carries nothing but its probes (the main table's default is internet): its ISP's FIFOs towards
        # each router sent them, both ways
        assert after["eth0"] - before["eth0"] >= 100 and after["eth1"] - before["eth1"] >= 100, (before, after)
        assert all(v.verdict == "pass" for v in calm.sla(policy)), calm.sla(policy)

        result = CliRunner().invoke(
            cli, ["lab", "--state-dir", str(lab.root), "degrade", "internet", "--cross-traffic-kbps", "14000"]
        )
        assert result.exit_code == 0, result.output
        sender = next(p for p in lab.state().processes if p.name == "degrade-internet")
        assert sender.alive() and lab.state().degraded == {"internet": 14000}
        time.sleep(2)
        hot = measure(lab.state(), policy, 2.0)
        internet = hot.transport("branch-rtr", "internet")
        mpls = hot.transport("branch-rtr", "mpls")
        assert internet is not None and mpls is not None
        assert internet.result.delay_mean_ms is not None and internet.result.delay_mean_ms > 200
        assert mpls.result.delay_mean_ms is not None and mpls.result.delay_mean_ms < 5
        isp = next(b for b in hot.bottlenecks if b.wan == "internet" and b.towards == "hub-rtr")
        assert isp.drops > 0 and isp.max_queue_delay_ms > 300  # the ISP's own FIFO, full and dropping
        router = next(r for r in hot.routers if r.node == "branch-rtr" and r.wan == "internet")
        assert router.max_queue_delay_ms < 50  # not the router's queue: it sends below the line's rate
        verdicts = {(v.device, v.transport, v.sla_class): v.verdict for v in hot.sla(policy)}
        assert verdicts[("branch-rtr", "internet", "voice")] == "fail"
        assert verdicts[("branch-rtr", "mpls", "voice")] == "pass"
        assert verdicts[("hub-rtr", "internet", "voice")] == "pass"  # the other direction is not congested

        stopped = CliRunner().invoke(cli, ["lab", "--state-dir", str(lab.root), "degrade", "internet", "--off"])
        assert stopped.exit_code == 0, stopped.output
        assert not _alive(sender.pid) and lab.state().degraded == {}
        args = ["lab", "--state-dir", str(lab.root), "measure", "--duration", "1", "--json"]
        measured = CliRunner().invoke(cli, args)
        assert measured.exit_code == 0, measured.output
        data = json.loads(measured.stdout)
        assert {(t["source"], t["transport"]) for t in data["transports"]} == {
            (r, t) for r in ("branch-rtr", "hub-rtr") for t in ("internet", "mpls")
        }
        assert {(v["device"], v["transport"], v["sla_class"]) for v in data["sla"]} == {
            (r, t, c) for r in ("branch-rtr", "hub-rtr") for t in ("internet", "mpls") for c in ("voice", "web")
        } - {("hub-rtr", t, "web") for t in ("internet", "mpls")}  # web is a branch journey
        control.degrade(lab.root, "internet", 5000)
        again = next(p for p in lab.state().processes if p.name == "degrade-internet")
        unknown = CliRunner().invoke(
            cli, ["lab", "--state-dir", str(lab.root), "degrade", "satellite", "--cross-traffic-kbps", "100"]
        )
        assert unknown.exit_code == 1
        assert "has no WAN or transport 'satellite' (WANs: internet, mpls)" in unknown.output
    assert not _alive(again.pid), "lab down left the cross-traffic sender running"
