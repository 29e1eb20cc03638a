"""Generate a valid policy repository with many journeys (50,000 by default) for the validation case.

The compile fleet (:mod:`bench.fleet`) has 10,000 devices and 50 journeys; this one is the
other way round: a few dozen devices and tens of thousands of journeys, which is where the
policy-wide checks that compare journeys with each other (overlapping traffic) are tested.

The journeys look like a large enterprise's or a service provider's catalogue: most are
TCP/443 or UDP media to their own prefix (an IPv4 /30 while they last, then IPv6 /64s),
some only name a UDP port, some also name source ports or an arriving DSCP, and one
umbrella journey per media kind covers the whole IPv4 range of its kind with the same
treatment. Journeys whose traffic overlaps always share a class and DSCP, so the fleet is
valid and every check does its full work. Addresses are from 198.18.0.0/15 and
2001:db8::/32 only. Deterministic: the same arguments write the same bytes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
JOURNEYS_PER_FILE = 1000
SITES = 12
DEVICES_PER_SITE = 2
BASE_V4 = int(ipaddress.ip_address("198.18.0.0"))
V4_SLOTS = 2**15  # /30s in 198.18.0.0/15
TRANSPORTS: tuple[dict[str, Any], ...] = (
    {"name": "mpls", "base_delay_ms": 20, "jitter_ms": 2, "loss_pct": 0.01, "cost": 30},
    {"name": "biz-internet", "base_delay_ms": 35, "jitter_ms": 5, "loss_pct": 0.1, "cost": 5},
)
# (kind, share of 10)
KINDS = ("voice", "voice", "conferencing", "interactive", "interactive", "interactive", "interactive")
KINDS += ("streaming", "bulk", "scavenger")


@dataclass(frozen=True, slots=True)
class JourneyFleet:
    root: Path
    journeys: int
    devices: int
    files: int


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "qoectl/v1",
        "kind": kind,
        "metadata": {"name": name, "owner": "bench@example.net"},
        "spec": spec,
    }


def _dump(path: Path, docs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.dump_all(docs, Dumper=DUMPER, sort_keys=False, default_flow_style=False, width=200), encoding="utf-8"
    )


def prefix(i: int) -> str:
    """Journey ``i``'s own destination prefix: an IPv4 /30 in 198.18.0.0/15, then IPv6 /64s in 2001:db8::/32."""
    if i < V4_SLOTS:
        return f"{ipaddress.ip_address(BASE_V4 + 4 * i)}/30"
    j = i - V4_SLOTS
    return f"2001:db8:{j >> 16:x}:{j & 0xFFFF:x}::/64"


def _journey(i: int) -> dict[str, Any]:
    kind = KINDS[i % len(KINDS)]
    net = prefix(i)
    match: dict[str, Any]
    target: dict[str, Any]
    priority = "normal"
    if kind == "voice":
        match = {"protocol": "udp", "destination_ports": ["16384-32767"], "destination_prefixes": [net]}
        target = {"voice": {"codec": "g711", "mos": 4.0}}
        priority = "critical"
    elif kind == "conferencing":
        match = {"protocol": "udp", "destination_ports": [9000 + i % 500], "destination_prefixes": [net]}
        target = {"video": {"mode": "conferencing", "bitrate_kbps": 1500}}
        priority = "high"
    elif kind == "interactive":
        match = {"protocol": "tcp", "destination_ports": [443], "destination_prefixes": [net]}
        target = {"interactive": {"apdex_t_ms": 1000, "apdex": 0.9}}
        priority = ("high", "normal", "low")[i % 3]
    elif kind == "streaming":
        match = {"protocol": "tcp", "destination_ports": [443], "destination_prefixes": [net]}
        target = {"video": {"mode": "streaming", "bitrate_kbps": 2500, "startup_s": 4}}
    elif kind == "bulk":
        match = {"protocol": "tcp", "destination_ports": ["8400-8499"], "destination_prefixes": [net]}
        target = {"bulk": {"min_throughput_kbps": 100}}
        priority = "low"
    else:
        match = {"protocol": "tcp", "destination_ports": [80, 443], "destination_prefixes": [net]}
        target = {"bulk": {"scavenger": True}}
        priority = "scavenger"
    if i % 7 == 3 and match["protocol"] == "tcp":
        match["source_ports"] = ["1024-65535"]
    if i % 11 == 5:
        match["dscp"] = 0
    matches = [match]
    if i % 50 == 7:  # a journey that is recognised by its UDP port alone (no prefix)
        matches.append({"protocol": "udp", "destination_ports": [40000 + i // 50]})
    spec: dict[str, Any] = {
        "traffic": {"application": f"app-{i}", "match": matches},
        "target": target,
        "priority": priority,
        "bandwidth": {"per_flow_kbps": 1, "concurrent_flows": 1},
    }
    form = i % 9
    if form == 1:
        spec["scope"] = {"contexts": ["branch"]}
    elif form == 2:
        spec["scope"] = {"sites": [f"site-{i % SITES:02d}"]}
    elif form == 3:
        spec["scope"] = {"device_tags": ["wan-edge"]}
    return _doc("Journey", f"{kind}-{i:05d}", spec)


def _umbrellas() -> list[dict[str, Any]]:
    """One journey per media kind over the whole IPv4 range: it overlaps every journey of its kind (same treatment)."""
    whole = "198.18.0.0/15"
    voice = {"protocol": "udp", "destination_ports": ["16384-32767"], "destination_prefixes": [whole]}
    video = {"protocol": "udp", "destination_ports": ["9000-9499"], "destination_prefixes": [whole]}
    return [
        _doc(
            "Journey",
            "umbrella-voice",
            {
                "traffic": {"match": [voice]},
                "target": {"voice": {"codec": "g711", "mos": 4.0}},
                "priority": "critical",
                "bandwidth": {"per_flow_kbps": 1, "concurrent_flows": 1},
            },
        ),
        _doc(
            "Journey",
            "umbrella-video",
            {
                "traffic": {"match": [video]},
                "target": {"video": {"mode": "conferencing", "bitrate_kbps": 1500}},
                "priority": "high",
                "bandwidth": {"per_flow_kbps": 1, "concurrent_flows": 1},
            },
        ),
    ]


GATEWAYS = ("198.18.100.1", "198.18.101.1")  # each transport's next hop (a linux edge with two routes by it)


def _inventory() -> dict[str, Any]:
    contexts = ("branch", "branch", "campus", "datacenter")
    sites = [{"name": f"site-{s:02d}", "context": contexts[s % len(contexts)]} for s in range(SITES)]
    devices = []
    for s in range(SITES):
        for d in range(DEVICES_PER_SITE):
            linux = (s + d) % 2 == 1
            wan = ("wan0", "wan1") if linux else ("GigabitEthernet0/0/0", "GigabitEthernet0/0/1")
            devices.append(
                {
                    "name": f"s{s:02d}-r{d + 1}",
                    "platform": "linux" if linux else "cisco_iosxe",
                    "host": f"s{s:02d}-r{d + 1}.mgmt.bench.example.net",
                    "site": f"site-{s:02d}",
                    "tags": ["wan-edge"] if d == 0 else ["wan-edge", "core"],
                    "credentials": {"username_env": "QOECTL_USER", "key_file": "~/.ssh/qoectl_ed25519"},
                    "interfaces": [
                        *(
                            {"name": w, "role": "wan", "transport": t, "bandwidth_kbps": 1_000_000, "gateway": gw}
                            for w, t, gw in zip(wan, ("mpls", "biz-internet"), GATEWAYS, strict=True)
                        ),
                        {"name": "lan0" if linux else "GigabitEthernet0/1/0", "role": "lan", "trust_dscp": False},
                    ],
                }
            )
    return _doc("Inventory", "bench", {"sites": sites, "transports": list(TRANSPORTS), "devices": devices})


def generate(root: Path, journeys: int = 50_000) -> JourneyFleet:
    """Write ``journeys`` journeys (plus two umbrella journeys) and a small inventory into ``root``."""
    if journeys > V4_SLOTS + 2**32:
        raise ValueError(f"at most {V4_SLOTS + 2**32} journeys")
    root.mkdir(parents=True, exist_ok=True)
    _dump(root / "inventory.yaml", [_inventory()])
    files = 1
    _dump(root / "journeys" / "umbrella.yaml", _umbrellas())
    files += 1
    for start in range(0, journeys, JOURNEYS_PER_FILE):
        docs = [_journey(i) for i in range(start, min(journeys, start + JOURNEYS_PER_FILE))]
        _dump(root / "journeys" / f"j{start // JOURNEYS_PER_FILE:03d}.yaml", docs)
        files += 1
    return JourneyFleet(root, journeys + 2, SITES * DEVICES_PER_SITE, files)
