"""A Linux SD-WAN edge on a real data plane, configured by ``qoectl apply`` over SSH.

    lan host -- lan0 [edge] wan0 -- ISP "mpls" ----------\\
                            wan1 -- ISP "biz-internet" -- far host (198.19.209.1, reachable via both)

The edge is a namespace with its own sshd (tests/lab/sshd.py); each WAN veth goes to an ISP namespace of
its own, and both ISPs route to the far host. Which transport carried a journey is read from nft counters
in the ISP namespaces (packets they forwarded towards the far host, per journey port), never from the
edge's own config. Shown with real packets:

* each journey leaves by its preferred transport (voice mpls, web and the strict journey internet), and
  traffic no journey claims by the main table (mpls);
* a policy edit that reorders voice's ``preferred_transports``, applied while a voice flow runs, moves
  that same flow (one sending socket) to internet: the packets are marked one by one, not pinned per flow;
* with the internet route gone, web (backup mpls) keeps flowing over mpls while the strict journey is
  dropped rather than sent over mpls; the next apply puts the route back.

Addresses are in 198.18.0.0/15, inside namespaces this test creates (the edge's management address comes
from the lab's own free /24); every process and namespace is stopped by PID/name in teardown (LinuxLab).
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.apply_support import by_device
from tests.lab.netns import Netns
from tests.lab.sshd import LinuxLab, SshRouter, lab_policy, linux_device, requires_sshd
from tests.lab.traffic import sender_result, start_sender
from tests.test_apply_linux import apply_cli

pytestmark = [requires_sshd, pytest.mark.root]

FAR = "198.19.209.1"
LAN, INET, TO_FAR_MPLS, TO_FAR_INET = "198.19.200", "198.19.201", "198.19.202", "198.19.203"
PORTS = {"voice": 41000, "web": 41443, "pinned": 41873, "other": 41999}

JOURNEYS = """\
apiVersion: qoectl/v1
kind: Journey
metadata: {{name: lab-voice, owner: lab@example.com}}
spec:
  traffic:
    match:
      - {{protocol: udp, destination_ports: [{voice}], destination_prefixes: [198.19.209.0/24]}}
  target: {{voice: {{codec: g711, mos: 4.0}}}}
  priority: critical
  bandwidth: {{per_flow_kbps: 90, concurrent_flows: 2}}
  sdwan: {{preferred_transports: [{voice_order}]}}
---
apiVersion: qoectl/v1
kind: Journey
metadata: {{name: lab-web, owner: lab@example.com}}
spec:
  traffic:
    match:
      - {{protocol: udp, destination_ports: [{web}], destination_prefixes: [198.19.209.0/24]}}
  target: {{interactive: {{apdex_t_ms: 500, apdex: 0.9}}}}
  priority: high
  bandwidth: {{share_pct: 5}}
  sdwan: {{preferred_transports: [biz-internet]}}
---
apiVersion: qoectl/v1
kind: Journey
metadata: {{name: lab-pinned, owner: lab@example.com}}
spec:
  traffic:
    match:
      - {{protocol: udp, destination_ports: [{pinned}], destination_prefixes: [198.19.209.0/24]}}
  target: {{bulk: {{min_throughput_kbps: 200}}}}
  priority: low
  bandwidth: {{share_pct: 2}}
  sdwan: {{strict: true, preferred_transports: [biz-internet]}}
"""


@dataclass
class Edge:
    router: SshRouter
    lan: Netns
    isps: dict[str, Netns]  # transport -> ISP namespace
    far: Netns


def _sysctl(ns: Netns, *settings: str) -> None:
    ns.exec("sysctl", "-qw", *settings)


def build_edge(linux_lab: LinuxLab) -> Edge:
    """The topology above, from the lab's router (mgmt0 + sshd, wan0/wan1 to one ISP, lan0 to a LAN host)."""
    r = linux_lab.router("edge", wan_ifaces=("wan0", "wan1"))
    lab = linux_lab.lab
    mpls, lanh = r.isp, lab.hosts["edge-lan"]
    inet, far = lab.host("edge-inet"), lab.host("edge-far")
    # wan1's far end moves into an ISP namespace of its own.
    mpls.exec("ip", "link", "set", "eth1", "netns", inet.name)
    inet.exec("ip", "addr", "add", f"{INET}.2/24", "dev", "eth1")
    inet.exec("ip", "link", "set", "eth1", "up")
    r.ns.exec("ip", "addr", "add", f"{INET}.1/24", "dev", "wan1")
    r.ns.exec("ip", "addr", "add", f"{LAN}.1/24", "dev", "lan0")
    lanh.exec("ip", "addr", "add", f"{LAN}.2/24", "dev", "eth0")
    lanh.exec("ip", "route", "add", "default", "via", f"{LAN}.1")
    lab.link(mpls, "f0", f"{TO_FAR_MPLS}.1/24", far, "m0", f"{TO_FAR_MPLS}.2/24")
    lab.link(inet, "f0", f"{TO_FAR_INET}.1/24", far, "i0", f"{TO_FAR_INET}.2/24")
    far.exec("ip", "addr", "add", f"{FAR}/32", "dev", "lo")
    far.exec("ip", "route", "add", f"{LAN}.0/24", "via", f"{TO_FAR_MPLS}.1")
    wan0 = str(ipaddress.ip_address(r.wan_peer) - 1)
    for isp, to_far, to_edge in ((mpls, TO_FAR_MPLS, wan0), (inet, TO_FAR_INET, f"{INET}.1")):
        isp.exec("ip", "route", "add", f"{FAR}/32", "via", f"{to_far}.2")
        isp.exec("ip", "route", "add", f"{LAN}.0/24", "via", to_edge)
        # What each ISP forwards towards the far host, per journey port: the transport a journey took.
        rules = "".join(
            f'  iifname != "f0" udp dport {port} counter comment "{name}"\n' for name, port in PORTS.items()
        )
        hook = " type filter hook forward priority 0;\n"
        isp.exec("nft", "-f", "-", input=f"table inet count {{\n chain towards_far {{\n{hook}{rules} }}\n}}\n")
    for ns in (r.ns, mpls, inet, far):
        _sysctl(ns, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
    r.ns.exec("ip", "route", "add", "default", "via", r.wan_peer)  # the edge's main table: mpls
    return Edge(r, lanh, {"mpls": mpls, "biz-internet": inet}, far)


def policy(dest: Path, edge: Edge, key: Path, voice_order: str) -> Path:
    entry = linux_device(edge.router, key)
    entry["interfaces"] = [
        {"name": "wan0", "role": "wan", "transport": "mpls", "bandwidth_kbps": 20000, "gateway": edge.router.wan_peer},
        {"name": "wan1", "role": "wan", "transport": "biz-internet", "bandwidth_kbps": 20000, "gateway": f"{INET}.2"},
        {"name": "lan0", "role": "lan", "trust_dscp": False},
    ]
    root = lab_policy(dest, [entry])
    (root / "journeys" / "sdwan-lab.yaml").write_text(JOURNEYS.format(voice_order=voice_order, **PORTS))
    return root


COUNTER = re.compile(r'packets (\d+) bytes \d+ comment "([^"]+)"')


def counts(edge: Edge) -> dict[str, dict[str, int]]:
    """transport -> journey -> packets that ISP forwarded to the far host."""
    return {
        t: {name: int(n) for n, name in COUNTER.findall(ns.exec("nft", "list", "table", "inet", "count").stdout)}
        for t, ns in edge.isps.items()
    }


def send(edge: Edge, *journeys: str, count: int = 40) -> dict[str, int]:
    """``count`` datagrams of each journey from the LAN host to the far host; journey -> how many were sent."""
    procs = {j: start_sender(edge.lan, FAR, PORTS[j], pps=200, count=count, seconds=count / 200) for j in journeys}
    return {j: int(sender_result(p, timeout=30)["sent"]) for j, p in procs.items()}


def delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {t: {j: after[t][j] - before[t][j] for j in PORTS} for t in after}


def apply(policy_dir: Path, known: Path, tmp_path: Path, run: str) -> dict:
    res, data = apply_cli(policy_dir, known, tmp_path, run)
    assert res.exit_code == 0 and by_device(data)["edge"]["status"] == "changed", res.output
    return by_device(data)["edge"]


def test_journeys_take_their_transport_a_live_flow_moves_and_backup_holds(linux_lab: LinuxLab, tmp_path: Path) -> None:
    edge = build_edge(linux_lab)
    known = linux_lab.known_hosts_file(tmp_path / "known_hosts")
    key = linux_lab.client_key
    apply(policy(tmp_path / "v1", edge, key, "mpls, biz-internet"), known, tmp_path, "run-v1")

    # 1. Each journey by its preferred transport; unclaimed traffic by the main table (mpls).
    before = counts(edge)
    sent = send(edge, *PORTS)
    got = delta(counts(edge), before)
    where = {"voice": "mpls", "web": "biz-internet", "pinned": "biz-internet", "other": "mpls"}
    for journey, transport in where.items():
        other = next(t for t in got if t != transport)
        assert (got[transport][journey], got[other][journey]) == (sent[journey], 0), (journey, got, sent)

    # 2. A live voice flow (one socket) moves when the policy reorders voice's preference and qoectl applies it.
    flow = start_sender(edge.lan, FAR, PORTS["voice"], pps=100, seconds=20)
    start = counts(edge)
    for _ in range(100):  # the flow is under way over mpls
        if counts(edge)["mpls"]["voice"] - start["mpls"]["voice"] >= 50:
            break
        time.sleep(0.05)
    result = apply(policy(tmp_path / "v2", edge, key, "biz-internet, mpls"), known, tmp_path, "run-v2")
    # Only voice's rules change: the nft table and the HTB trees (and the flow's queue) are left alone.
    assert result["commands"][1:] == ["ip -batch: the rules and routes that differ"], result["commands"]
    assert flow.poll() is None, "the flow ended before the change: raise its duration"
    time.sleep(0.3)
    moved = counts(edge)
    time.sleep(1.0)
    later = counts(edge)
    assert later["mpls"]["voice"] == moved["mpls"]["voice"], "voice still leaves by mpls after the change"
    assert later["biz-internet"]["voice"] - moved["biz-internet"]["voice"] >= 80, (moved, later)
    total = sender_result(flow, timeout=40)["sent"]
    end = delta(counts(edge), start)
    assert end["mpls"]["voice"] >= 50 and end["biz-internet"]["voice"] >= 500, end
    assert end["mpls"]["voice"] + end["biz-internet"]["voice"] >= 0.97 * total, (end, total)

    # 3. The internet route gone: web falls back to mpls, the strict journey is dropped, voice takes mpls.
    table = re.search(r"dev wan1 table (\d+)", edge.router.sh("ip route show table all")).group(1)  # type: ignore[union-attr]
    edge.router.sh(f"ip route del default table {table}")
    before = counts(edge)
    sent = send(edge, "voice", "web", "pinned")
    got = delta(counts(edge), before)
    assert got["mpls"]["web"] == sent["web"] and got["biz-internet"]["web"] == 0, got
    assert got["mpls"]["voice"] == sent["voice"] and got["biz-internet"]["voice"] == 0, got
    assert got["mpls"]["pinned"] == got["biz-internet"]["pinned"] == 0, got

    # 4. The next apply sees the missing route (drift) and puts it back: web is on internet again.
    result = apply(policy(tmp_path / "v3", edge, key, "biz-internet, mpls"), known, tmp_path, "run-v3")
    assert f"+default via {INET}.2 dev wan1 table {table} " in result["diff"], result["diff"]
    before = counts(edge)
    sent = send(edge, "web", "pinned")
    got = delta(counts(edge), before)
    assert got["biz-internet"]["web"] == sent["web"] and got["biz-internet"]["pinned"] == sent["pinned"], got
