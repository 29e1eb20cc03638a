"""The Linux renderer on a real data plane: sender ns -- router ns -- receiver ns.

A small policy is compiled with the real pipeline, rendered, and loaded into
the router namespace (``nft -f`` + ``tc -batch``). Then real packets show that
it works: under a 20 Mbit/s UDP overload of a 10 Mbit/s WAN, a 50 packet/s
voice flow keeps (almost) no loss and low delay, where the same traffic
through a plain FIFO bottleneck suffers; and every packet arrives with the
DSCP the policy asks for (EF for voice even though the sender leaves it
unmarked, never EF for the overload even though the sender marks it EF on an
untrusted LAN).

The example's own Linux routers are run the same way (one with an untrusted and
one with a trusted LAN): for every journey they carry, IPv4 and IPv6, and for
two added journeys that match the DSCP a packet arrives with, a sniffer behind
the WAN sees the journey's DSCP and the HTB counters show the journey's class;
CS6/CS7 (also the router's own) land in the network-control class, and DSCPs
no journey claims are kept from the trusted LAN and bleached from the other.

The thresholds are functional outcomes with wide margins (loss below 1 %
against tens of percent, delay tens of times lower), not timings of our own
code. Addresses are in the benchmarking ranges 198.18.0.0/15 and 2001:2::/48,
inside namespaces this test creates; every process is stopped by PID and
every namespace deleted in teardown, also on failure. Ports are fixed because
each receiver lives in its own fresh namespace, where every port is free.
"""

from __future__ import annotations

import ipaddress
import math
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.pipeline import build, render_plan
from controller.plan import DevicePlan, PlanMatch, QosClass
from tests.example_policy import MARKED_JOURNEYS, example_with
from tests.lab.netns import Lab, Netns, requires_netns
from tests.lab.traffic import (
    HEADER,
    FlowStats,
    Listener,
    Receiver,
    Sniffed,
    Sniffer,
    decode_frame,
    flow_stats,
    icmp_checksum,
    icmp_echo,
    parse_payload,
    payload,
    percentile,
    pps_for,
    sender_result,
    start_sender,
)

EF = 46
LAN_NET, WAN_NET = "198.18.1", "198.18.2"
LAN6_NET, WAN6_NET = "2001:2:0:1", "2001:2:0:2"
RCV4, RCV6 = f"{WAN_NET}.2", f"{WAN6_NET}::2"
VOICE_PORT = 20000  # inside the voice journey's range
BULK_PORT = 5201  # the bulk journey
OTHER_PORT = 7000  # matched by no journey
WAN_KBPS = 10_000
SECONDS = 4.0  # traffic per scenario; the plain FIFO needs ~1.2 s to fill

INVENTORY = f"""\
apiVersion: qoectl/v1
kind: Inventory
metadata: {{name: lab}}
spec:
  sites:
    - {{name: lab, context: branch}}
  devices:
    - name: rtr
      platform: linux
      host: rtr.lab.example
      site: lab
      interfaces:
        - {{name: wan0, role: wan, bandwidth_kbps: {WAN_KBPS}}}
        - {{name: lan0, role: lan, trust_dscp: false}}
"""

JOURNEYS = f"""\
apiVersion: qoectl/v1
kind: Journey
metadata: {{name: voice}}
spec:
  traffic:
    match:
      - protocol: udp
        destination_ports: ["20000-20999"]
        destination_prefixes: [{WAN_NET}.0/24]
      - protocol: udp
        destination_ports: ["20000-20999"]
        destination_prefixes: ["{WAN6_NET}::/64"]
  target: {{voice: {{codec: g711, mos: 4.0}}}}
  priority: critical
  bandwidth: {{per_flow_kbps: 90, concurrent_flows: 4}}
---
apiVersion: qoectl/v1
kind: Journey
metadata: {{name: bulk}}
spec:
  traffic:
    match:
      - protocol: udp
        destination_ports: [{BULK_PORT}]
  target: {{bulk: {{min_throughput_kbps: 1000}}}}
  priority: low
  bandwidth: {{share_pct: 20}}
---
apiVersion: qoectl/v1
kind: Journey
metadata: {{name: pings}}
spec:
  traffic:
    match:
      - protocol: icmp
  target: {{interactive: {{apdex_t_ms: 500, apdex: 0.9}}}}
  priority: high
  bandwidth: {{share_pct: 1}}
"""


# --------------------------------------------------------------------------- traffic tool helpers (no root)


def test_payload_round_trip_and_foreign_data() -> None:
    data = payload(7, 172, 123_456_789)
    assert len(data) == 172
    assert parse_payload(data) == (7, 123_456_789)
    assert parse_payload(b"x" * 40) is None
    assert parse_payload(data[: HEADER.size - 1]) is None


def test_icmp_echo_checksum_verifies() -> None:
    packet = icmp_echo(0x1234, 5, payload(5, 40, 1), v6=False)
    assert packet[0] == 8
    assert icmp_checksum(packet) == 0  # a correct checksum sums to zero
    assert struct.unpack("!H", icmp_echo(1, 1, b"ab", v6=True)[2:4]) == (0,)  # ICMPv6: kernel fills it


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([3.0], 99) == 3.0
    assert math.isnan(percentile([], 50))


def test_flow_stats_counts_loss_duplicates_and_dscp() -> None:
    records = [(0, 1000, EF << 2), (1, 3000, EF << 2), (1, 9000, 0), (3, 2000, (EF << 2) | 1)]
    stats = flow_stats(5, records)
    assert stats.received == 3
    assert stats.loss_pct == pytest.approx(40.0)
    assert stats.dscps == {EF: 3}  # ECN bits are not DSCP; the duplicate of seq 1 is ignored
    assert stats.p50_ms == pytest.approx(2.0)
    assert stats.max_ms == pytest.approx(3.0)


def test_sniffer_decodes_ipv4_and_ipv6_frames() -> None:
    eth4 = b"\0" * 12 + struct.pack("!H", 0x0800)
    ip4 = bytes([0x45, EF << 2]) + b"\0" * 7 + bytes([6]) + b"\0\0" + bytes([198, 18, 1, 2, 198, 18, 2, 2])
    got = decode_frame(eth4 + ip4 + struct.pack("!HH", 40000, 443))
    assert got == (4, 6, "198.18.1.2", "198.18.2.2", 40000, 443, EF << 2)
    eth6 = b"\0" * 12 + struct.pack("!H", 0x86DD)
    src, dst = ipaddress.ip_address("2001:2:0:1::2").packed, ipaddress.ip_address("2001:2:0:2::2").packed
    tclass = EF << 2
    ip6 = bytes([0x60 | (tclass >> 4), (tclass & 0x0F) << 4, 0, 0, 0, 8, 17, 64]) + src + dst
    got = decode_frame(eth6 + ip6 + struct.pack("!HH", 5000, 5004))
    assert got == (6, 17, "2001:2:0:1::2", "2001:2:0:2::2", 5000, 5004, EF << 2)
    assert decode_frame(b"\0" * 12 + struct.pack("!H", 0x0806) + b"\0" * 28) is None  # ARP


def test_rate_and_listener_parsing() -> None:
    assert pps_for(20_000, 1400, v6=False) == pytest.approx(20_000_000 / (1428 * 8))
    assert Listener.parse("udp6:5004").key == "udp6:5004"
    assert Listener.parse("icmp").key == "icmp"
    with pytest.raises(Exception, match="udp:PORT"):
        Listener.parse("udp:0")


# --------------------------------------------------------------------------- the lab


@dataclass(frozen=True)
class Topology:
    snd: Netns
    rtr: Netns
    rcv: Netns


def _topology(lab: Lab) -> Topology:
    snd, rtr, rcv = lab.host("snd"), lab.host("rtr"), lab.host("rcv")
    for ns in (snd, rtr, rcv):
        # No duplicate address detection: while a link-local address is tentative the router
        # cannot send neighbour solicitations for forwarded IPv6 packets (they would be lost).
        ns.exec("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
    lab.link(rtr, "lan0", f"{LAN_NET}.1/24", snd, "eth0", f"{LAN_NET}.2/24")
    lab.link(rtr, "wan0", f"{WAN_NET}.1/24", rcv, "eth0", RCV4 + "/24")
    for ns, ifname, addr in (
        (snd, "eth0", f"{LAN6_NET}::2/64"),
        (rtr, "lan0", f"{LAN6_NET}::1/64"),
        (rtr, "wan0", f"{WAN6_NET}::1/64"),
        (rcv, "eth0", f"{RCV6}/64"),
    ):
        ns.exec("ip", "-6", "addr", "add", addr, "dev", ifname, "nodad")
    snd.exec("ip", "route", "add", "default", "via", f"{LAN_NET}.1")
    snd.exec("ip", "-6", "route", "add", "default", "via", f"{LAN6_NET}::1")
    rcv.exec("ip", "route", "add", "default", "via", f"{WAN_NET}.1")
    rcv.exec("ip", "-6", "route", "add", "default", "via", f"{WAN6_NET}::1")
    rtr.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
    rtr.exec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    return Topology(snd, rtr, rcv)


def _compile(tmp_path: Path) -> tuple[DevicePlan, dict[str, Path]]:
    """The lab policy through the real pipeline; returns the plan and the rendered files on disk."""
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "inventory.yaml").write_text(INVENTORY, encoding="utf-8")
    (policy / "journeys.yaml").write_text(JOURNEYS, encoding="utf-8")
    result = build(policy)
    assert result.ok, "\n".join(d.format() for d in result.errors)
    plan = result.plan("rtr")
    assert plan is not None
    out = tmp_path / "out"
    out.mkdir()
    paths = {}
    for name, text in render_plan(plan).items():
        paths[name] = out / name
        paths[name].write_text(text, encoding="utf-8")
    return plan, paths


def _apply(rtr: Netns, files: dict[str, Path]) -> None:
    rtr.exec("nft", "-f", str(files["nftables.nft"]))
    rtr.exec("tc", "-batch", str(files["tc.batch"]))


def _marking(plan: DevicePlan, journey: str) -> int:
    return next(r.dscp for r in plan.markings if r.journey == journey)


def _class_packets(rtr: Netns, classid: str) -> tuple[int, int]:
    """(packets sent, packets dropped) of one HTB class on wan0, from the kernel's counters."""
    text = rtr.exec("tc", "-s", "class", "show", "dev", "wan0", "classid", classid).stdout
    m = re.search(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+)", text)
    assert m, f"no counters for class {classid}:\n{text}"
    return int(m.group(1)), int(m.group(2))


def _congest(top: Topology) -> tuple[FlowStats, FlowStats, dict[str, float]]:
    """Voice (50 pkt/s, RTP-sized, unmarked) plus ~20 Mbit/s of EF-marked UDP overload, at once."""
    receiver = Receiver(
        top.rcv, [f"udp:{VOICE_PORT}", f"udp:{BULK_PORT}"], bind4=RCV4, max_seconds=SECONDS + 10, idle=1.0
    )
    overload = start_sender(top.snd, RCV4, BULK_PORT, size=1400, kbps=2 * WAN_KBPS, seconds=SECONDS, tos=EF << 2)
    voice = start_sender(top.snd, RCV4, VOICE_PORT, size=172, pps=50, seconds=SECONDS)
    sent_overload = sender_result(overload, timeout=SECONDS + 20)
    sent_voice = sender_result(voice, timeout=SECONDS + 20)
    records = receiver.result()
    offered_kbps = sent_overload["sent"] * (1400 + 28) * 8 / 1000 / max(sent_overload["seconds"], 1e-3)
    return (
        flow_stats(sent_voice["sent"], records[f"udp:{VOICE_PORT}"]),
        flow_stats(sent_overload["sent"], records[f"udp:{BULK_PORT}"]),
        {"overload_offered_kbps": round(offered_kbps)},
    )


@requires_netns
@pytest.mark.root
@pytest.mark.slow
def test_voice_survives_overload_only_with_qoectl(
    lab: Lab, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    plan, files = _compile(tmp_path)
    top = _topology(lab)

    # Baseline: the same router with a plain 10 Mbit/s FIFO bottleneck (HTB, one class, default pfifo).
    top.rtr.exec("tc", "qdisc", "replace", "dev", "wan0", "root", "handle", "1:", "htb", "default", "1")
    top.rtr.exec("tc", "class", "add", "dev", "wan0", "parent", "1:", "classid", "1:1", "htb", "rate", "10000kbit")
    fifo_voice, fifo_overload, fifo_extra = _congest(top)

    # qoectl: the compiled plan replaces the FIFO tree and adds the marking ruleset.
    _apply(top.rtr, files)
    qoe_voice, qoe_overload, qoe_extra = _congest(top)

    voice_class = next(c for c in plan.classes if c.strict)
    voice_cls_sent, voice_cls_dropped = _class_packets(top.rtr, f"1:{0x10 + voice_class.queue:x}")
    bulk_class = plan.qos_class(next(r.class_name for r in plan.markings if r.journey == "bulk"))
    bulk_cls_sent, bulk_cls_dropped = _class_packets(top.rtr, f"1:{0x10 + bulk_class.queue:x}")

    lines = [
        fifo_voice.line("plain FIFO  voice   "),
        fifo_overload.line("plain FIFO  overload"),
        qoe_voice.line("qoectl      voice   "),
        qoe_overload.line("qoectl      overload"),
        f"overload offered: FIFO run {fifo_extra['overload_offered_kbps']} kbit/s, "
        f"qoectl run {qoe_extra['overload_offered_kbps']} kbit/s (WAN {WAN_KBPS} kbit/s)",
        f"HTB {voice_class.name}: sent {voice_cls_sent} pkt, dropped {voice_cls_dropped}; "
        f"{bulk_class.name}: sent {bulk_cls_sent} pkt, dropped {bulk_cls_dropped}",
    ]
    print("\n" + "\n".join(lines))
    for key, stats in (("fifo_voice", fifo_voice), ("qoectl_voice", qoe_voice)):
        record_property(f"{key}_loss_pct", round(stats.loss_pct, 2))
        record_property(f"{key}_p50_ms", round(stats.p50_ms, 3))
        record_property(f"{key}_p99_ms", round(stats.p99_ms, 3))

    # The overload really overloaded the link in both runs (else the comparison means nothing).
    assert fifo_extra["overload_offered_kbps"] > 1.5 * WAN_KBPS, lines
    assert qoe_extra["overload_offered_kbps"] > 1.5 * WAN_KBPS, lines
    # Baseline: real congestion, and nobody marked anything.
    assert fifo_voice.loss_pct > 5 or fifo_voice.p99_ms > 200, lines
    assert fifo_voice.dscps == {0: fifo_voice.received}, lines
    assert fifo_overload.dscps == {EF: fifo_overload.received}, lines
    # qoectl: voice is protected ...
    assert qoe_voice.sent >= 150 and qoe_voice.loss_pct < 1.0, lines
    assert qoe_voice.p99_ms < 50 and qoe_voice.p99_ms * 10 < fifo_voice.p99_ms, lines
    # ... because the router marked it EF and queued it in the strict class,
    assert qoe_voice.dscps == {EF: qoe_voice.received}, lines
    assert voice_cls_sent >= qoe_voice.received and voice_cls_dropped == 0, lines
    # while the EF the untrusted sender put on the overload was reset and the bulk journey's marking applied.
    assert qoe_overload.dscps == {_marking(plan, "bulk"): qoe_overload.received}, lines
    assert bulk_cls_dropped > 0, lines


@requires_netns
@pytest.mark.root
def test_marking_per_family_and_protocol(lab: Lab, tmp_path: Path) -> None:
    """IPv4 and IPv6, UDP and ICMP, matched and unmatched: the DSCP each packet arrives with."""
    plan, files = _compile(tmp_path)
    top = _topology(lab)
    _apply(top.rtr, files)
    voice, bulk, pings = (_marking(plan, j) for j in ("voice", "bulk", "pings"))
    listeners = [
        f"udp:{VOICE_PORT}",
        f"udp6:{VOICE_PORT}",
        f"udp:{BULK_PORT}",
        f"udp:{OTHER_PORT}",
        f"udp6:{OTHER_PORT}",
        "icmp",
        "icmp6",
    ]
    receiver = Receiver(top.rcv, listeners, bind4=RCV4, bind6=RCV6, max_seconds=15, idle=0.8)
    probes = {  # listener -> (destination, port or echo id, protocol, TOS sent, DSCP expected on arrival)
        f"udp:{VOICE_PORT}": (RCV4, VOICE_PORT, "udp", 0, voice),
        f"udp6:{VOICE_PORT}": (RCV6, VOICE_PORT, "udp", 0, voice),
        f"udp:{BULK_PORT}": (RCV4, BULK_PORT, "udp", EF << 2, bulk),
        f"udp:{OTHER_PORT}": (RCV4, OTHER_PORT, "udp", EF << 2, 0),  # untrusted LAN: EF reset to CS0
        f"udp6:{OTHER_PORT}": (RCV6, OTHER_PORT, "udp", EF << 2, 0),
        "icmp": (RCV4, 0x51, "icmp", 0, pings),
        "icmp6": (RCV6, 0x52, "icmp", 0, pings),
    }
    senders = {
        key: start_sender(top.snd, dst, port, proto=proto, size=64, pps=200, count=20, seconds=2, tos=tos)
        for key, (dst, port, proto, tos, _) in probes.items()
    }
    sent = {key: sender_result(proc, timeout=20)["sent"] for key, proc in senders.items()}
    records = receiver.result()
    seen = {key: flow_stats(sent[key], records[key]) for key in probes}
    report = "\n".join(s.line(k) for k, s in seen.items())
    for key, (*_, expected) in probes.items():
        assert seen[key].sent == 20 and seen[key].received == 20, report
        assert seen[key].dscps == {expected: 20}, f"{key}: expected DSCP {expected}\n{report}"


# --------------------------------------------------------------------------- the example's journeys on the wire

EXAMPLE_LINUX = {"br2-rtr1": False, "br2-rtr2": True}  # the example's Linux routers -> is their LAN trusted?
CS2, CS6, CS7 = 16, 48, 56
PROBE_PACKETS = 3


@dataclass(frozen=True)
class Probe:
    """Packets sent through (or from) the router, and what must come out of wan0."""

    label: str
    host: str  # "snd" (forwarded from the LAN) or "rtr" (the router's own traffic)
    proto: str
    dst: str
    port: int
    dscp_sent: int
    dscp_expected: int
    class_expected: str  # HTB classid that must count the packets

    @property
    def version(self) -> int:
        return 6 if ":" in self.dst else 4

    def matches(self, p: Sniffed) -> bool:
        proto = {"udp": 17, "tcp": 6}[self.proto]
        return (p.version, p.proto, p.dst, p.dport) == (self.version, proto, self.dst, self.port)


def _example_plan(tmp_path: Path, device: str) -> tuple[DevicePlan, dict[str, Path]]:
    """The bundled example plus MARKED_JOURNEYS, through the real pipeline; one Linux router's plan and files."""
    result = build(example_with(tmp_path, {"journeys/marked.yaml": MARKED_JOURNEYS}))
    assert result.ok, "\n".join(d.format() for d in result.errors)
    plan = result.plan(device)
    assert plan is not None and plan.platform == "linux"
    out = tmp_path / "out"
    out.mkdir()
    paths = {}
    for name, text in render_plan(plan).items():
        paths[name] = out / name
        paths[name].write_text(text, encoding="utf-8")
    return plan, paths


def _htb(c: QosClass) -> str:
    return f"1:{0x10 + c.queue:x}"


def _destination(m: PlanMatch, version: int) -> str:
    """An address the match's destination prefixes contain (the receiver's own address when it has none)."""
    for prefix in m.destination_prefixes:
        net = ipaddress.ip_network(prefix)
        if net.version == version:
            return str(net[2])
    return RCV4 if version == 4 else RCV6


def _probes(plan: DevicePlan, trusted: bool) -> list[Probe]:
    """One probe per journey match and address family, then the DSCPs no journey claims.

    Expectations come from the plan (the journey's DSCP and class); the packets show what the router does.
    """
    default = next(c for c in plan.classes if c.is_default)
    out = []
    for rule in plan.markings:
        cls = plan.qos_class(rule.class_name)
        for k, m in enumerate(rule.matches):
            assert not m.source_prefixes, f"{rule.journey}: the lab sender cannot be in {m.source_prefixes}"
            prefixes = m.destination_prefixes
            versions = sorted({ipaddress.ip_network(p).version for p in prefixes}) if prefixes else [4, 6]
            for v in versions:
                out.append(
                    Probe(
                        f"journey {rule.journey} match {k} IPv{v}",
                        "snd",
                        "tcp" if m.protocol == "tcp" else "udp",
                        _destination(m, v),
                        m.destination_ports[0][0] if m.destination_ports else 9,
                        m.dscp or 0,
                        rule.dscp,
                        _htb(cls),
                    )
                )
    control = next((c for c in plan.classes if c.name == "network-control"), None)
    strict = next(c for c in plan.classes if c.strict)
    for v, dst in ((4, RCV4), (6, RCV6)):
        # Trusted: the DSCP stays and picks the queue (CS6/CS7: network control; EF: the strict class);
        # untrusted: what no journey claimed is bleached to CS0 and queued as default.
        for port, dscp, cls in ((7000, CS2, default), (7001, CS6, control), (7002, CS7, control), (7003, EF, strict)):
            expected = _htb(cls) if cls is not None else "network-control class missing from the plan"
            out.append(
                Probe(
                    f"unclaimed DSCP {dscp} IPv{v}",
                    "snd",
                    "udp",
                    dst,
                    port,
                    dscp,
                    dscp if trusted else 0,
                    expected if trusted else _htb(default),
                )
            )
    # The router's own routing traffic (CS6, e.g. BGP/BFD): network control whatever the LAN trusts.
    own = _htb(control) if control is not None else "network-control class missing from the plan"
    out.append(Probe("router's own CS6 IPv4", "rtr", "udp", RCV4, 7010, CS6, CS6, own))
    out.append(Probe("router's own CS6 IPv6", "rtr", "udp", RCV6, 7010, CS6, CS6, own))
    return out


HTB_LEAF_STATS = re.compile(r"^class htb (\S+) [^\n]*\bleaf\b[^\n]*\n\s*Sent \d+ bytes (\d+) pkt", re.M)


def _htb_packets(rtr: Netns) -> dict[str, int]:
    """Packets sent by every HTB leaf class on wan0 (the kernel's counters)."""
    text = rtr.exec("tc", "-s", "class", "show", "dev", "wan0").stdout
    return {cid: int(n) for cid, n in HTB_LEAF_STATS.findall(text)}


@requires_netns
@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("device", sorted(EXAMPLE_LINUX))
def test_every_example_journey_takes_effect_on_the_wire(lab: Lab, tmp_path: Path, device: str) -> None:
    """Every journey the example's Linux routers carry, IPv4 and IPv6, on an untrusted and a trusted LAN.

    Each probe is a few real packets from the LAN (or from the router itself); a sniffer behind wan0 records
    the DSCP each one leaves with, and the HTB counters of wan0 show the class that sent it.
    """
    plan, files = _example_plan(tmp_path, device)
    trusted = EXAMPLE_LINUX[device]
    assert [i.trust_dscp for i in plan.lan_interfaces] == [trusted]
    assert [i.name for i in plan.interfaces] == ["lan0", "wan0"]
    top = _topology(lab)
    probes = _probes(plan, trusted)
    for rule in plan.markings:
        for m in rule.matches:
            for prefix in m.destination_prefixes:
                v6 = ipaddress.ip_network(prefix).version == 6
                top.rtr.exec("ip", *(["-6"] if v6 else []), "route", "replace", prefix, "via", RCV6 if v6 else RCV4)
    _apply(top.rtr, files)
    default = _htb(next(c for c in plan.classes if c.is_default))
    sniffer = Sniffer(top.rcv, "eth0")
    deltas = []
    try:
        for probe in probes:
            before = _htb_packets(top.rtr)
            host = top.snd if probe.host == "snd" else top.rtr
            sender = start_sender(
                host, probe.dst, probe.port, proto=probe.proto, size=64, pps=100, count=PROBE_PACKETS,
                seconds=2, tos=probe.dscp_sent << 2,
            )  # fmt: skip
            assert sender_result(sender, timeout=20)["sent"] == PROBE_PACKETS, probe
            time.sleep(0.2)  # let HTB dequeue (and count) them
            after = _htb_packets(top.rtr)
            deltas.append({cid: after[cid] - before.get(cid, 0) for cid in after if after[cid] != before.get(cid, 0)})
    finally:
        seen = sniffer.result()
    lines, problems = [], []
    for probe, delta in zip(probes, deltas, strict=True):
        dscps = sorted(p.dscp for p in seen if probe.matches(p))
        others = {cid: n for cid, n in delta.items() if cid not in (probe.class_expected, default)}
        line = (
            f"{probe.label}: sent DSCP {probe.dscp_sent}, left with {dscps} (want {probe.dscp_expected}); "
            f"HTB {delta} (want {probe.class_expected})"
        )
        lines.append(line)
        if (
            dscps != [probe.dscp_expected] * PROBE_PACKETS
            or delta.get(probe.class_expected, 0) < PROBE_PACKETS
            or others
        ):
            problems.append(line)
    print(f"\n{device} ({'trusted' if trusted else 'untrusted'} LAN):\n" + "\n".join(lines))
    assert len(probes) >= 20
    assert not problems, f"{device}: {len(problems)} of {len(probes)} probes wrong:\n" + "\n".join(problems)
