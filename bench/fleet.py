"""Generate a large, valid qoectl policy repository for the compile benchmark.

Why generated: a benchmark needs a fleet the size of a real enterprise (10,000
devices) that is *valid*, so that every stage does its full work, and it must
keep working when new platforms appear. Devices are therefore spread over every
platform :func:`controller.render.platforms` returns, and a journey is scoped
away from platforms that cannot express it (by the renderer's own declared
capabilities), so adding a renderer never turns the fleet invalid.

The repository looks like one a network team keeps in Git: a settings file,
sites and transports in one inventory file, devices split over several
inventory files, one file per journey group. Scopes use contexts, tags and a
few site lists. Addresses are from 198.18.0.0/15 and 2001:db8::/32 only.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller.model.catalogue import RFC4594
from controller.render import base as cap
from controller.render import get_renderer, platforms

DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
DEVICES_PER_FILE = 500
DEVICES_PER_SITE = 4
REGIONS = ("emea", "amer", "apac")
TRANSPORTS: tuple[dict[str, Any], ...] = (
    {"name": "mpls", "base_delay_ms": 20, "jitter_ms": 2, "loss_pct": 0.01, "cost": 30},
    {"name": "biz-internet", "base_delay_ms": 35, "jitter_ms": 5, "loss_pct": 0.1, "cost": 5},
    {"name": "public-internet", "base_delay_ms": 45, "jitter_ms": 8, "loss_pct": 0.2, "cost": 3},
    {"name": "lte", "base_delay_ms": 60, "jitter_ms": 15, "loss_pct": 0.2, "metered": True, "cost": 50},
    {"name": "private1", "base_delay_ms": 2, "jitter_ms": 0.5, "loss_pct": 0.001, "cost": 1},
)
CLASS_OF_KIND = {
    "voice": "telephony",
    "signaling": "signaling",
    "conferencing": "multimedia-conferencing",
    "streaming": "multimedia-streaming",
    "interactive": "low-latency-data",
    "bulk": "high-throughput-data",
    "scavenger": "low-priority-data",
}
# Journey classes in the order a device short of queues keeps them: a platform whose plan also has the
# network-control class (Renderer.network_control) and 8 queues holds six journey classes, so buffered
# streaming, elastic TCP like bulk data, is scoped away from it first.
KEEP_ORDER = (
    "telephony",
    "signaling",
    "multimedia-conferencing",
    "low-latency-data",
    "high-throughput-data",
    "low-priority-data",
    "multimedia-streaming",
)
# (kind, how many of 50): a realistic enterprise mix.
JOURNEY_MIX: tuple[tuple[str, int], ...] = (
    ("voice", 4),
    ("signaling", 3),
    ("conferencing", 6),
    ("streaming", 5),
    ("interactive", 18),
    ("bulk", 10),
    ("scavenger", 4),
)


@dataclass(frozen=True, slots=True)
class Profile:
    """A platform plus optional features: what a group of devices can express."""

    platform: str
    features: tuple[str, ...]

    @property
    def tag(self) -> str:
        return "qos-" + "-".join((self.platform.replace("_", "-"), *self.features))

    def can_express(self) -> frozenset[str]:
        """Capabilities (with a documented fallback or not) and ``class:<name>`` for each journey class it has room for.

        Room: the platform's queues less the default class and, where the plan owns the queues, network control.
        """
        renderer = get_renderer(self.platform)
        assert renderer is not None
        room = renderer.limits.max_classes - 1 - (1 if renderer.network_control else 0)
        classes = frozenset(f"class:{c}" for c in KEEP_ORDER[:room])
        return renderer.capabilities_for(self.features) | frozenset(renderer.degradable) | classes


@dataclass(frozen=True, slots=True)
class FleetInfo:
    root: Path
    devices: int
    journeys: int
    sites: int
    interfaces: int
    platforms: tuple[str, ...]
    files: int


def profiles() -> list[Profile]:
    """Every platform, and each with every optional feature it declares (so both code paths run)."""
    out = []
    for name in platforms():
        renderer = get_renderer(name)
        assert renderer is not None
        out.append(Profile(name, ()))
        out.extend(Profile(name, (feature,)) for feature in sorted(renderer.feature_capabilities))
    return out


def _profile_for(i: int, profs: list[Profile]) -> Profile:
    """Devices spread evenly over platforms, then over each platform's feature variants."""
    names = sorted({p.platform for p in profs})
    platform = names[i % len(names)]
    variants = [p for p in profs if p.platform == platform]
    return variants[(i // len(names)) % len(variants)]


def _dump(path: Path, docs: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump_all(list(docs), Dumper=DUMPER, sort_keys=False, default_flow_style=False, width=200)
    path.write_text(text, encoding="utf-8")


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "qoectl/v1",
        "kind": kind,
        "metadata": {"name": name, "owner": "bench@example.net"},
        "spec": spec,
    }


def _iface_name(platform: str, role: str, n: int) -> str:
    if platform == "linux":
        return f"{role}{n}"
    if platform.startswith("cisco"):
        return f"GigabitEthernet0/0/{n if role == 'wan' else n + 4}"
    return f"eth{n if role == 'wan' else n + 4}"


def _site_context(index: int) -> str:
    """1 % data centres, 5 % campuses, the rest branches; sites 0 and 1 make every context exist in any fleet."""
    if index % 100 == 0:
        return "datacenter"
    if index % 20 == 1:
        return "campus"
    return "branch"


def _device(i: int, profile: Profile, site: int, rng: random.Random) -> dict[str, Any]:
    context = _site_context(site)
    region = REGIONS[site % len(REGIONS)]
    shaping = cap.SHAPING in profile.can_express()
    if context == "branch":
        wans = [("mpls", rng.choice((50_000, 100_000))), ("biz-internet", rng.choice((100_000, 200_000)))]
        if i % 3 == 0:
            wans.append(("lte", 50_000))
        port = 1_000_000
        lans = 2 + (i % 2)
    elif context == "campus":
        wans = [("mpls", 1_000_000), ("biz-internet", 1_000_000)]
        port = 10_000_000
        lans = 4
    else:
        wans = [("private1", 10_000_000), ("mpls", 1_000_000), ("biz-internet", 1_000_000)]
        port = 10_000_000
        lans = 6
    interfaces: list[dict[str, Any]] = []
    for n, (transport, rate) in enumerate(wans):
        iface: dict[str, Any] = {
            "name": _iface_name(profile.platform, "wan", n),
            "role": "wan",
            "transport": transport,
            "bandwidth_kbps": rate,
            "gateway": f"198.18.{100 + n}.1",  # the transport's next hop (a linux edge with two routes by it)
        }
        if shaping and rate < port:
            iface["port_speed_kbps"] = port
        interfaces.append(iface)
    for n in range(lans):
        interfaces.append(
            {"name": _iface_name(profile.platform, "lan", n), "role": "lan", "trust_dscp": n % 2 == 1},
        )
    tags = ["wan-edge", f"region-{region}", profile.tag, "branch" if context == "branch" else "core"]
    return {
        "name": f"{context[:2]}{site:05d}-r{i % DEVICES_PER_SITE + 1}",
        "platform": profile.platform,
        "host": f"r{i}.mgmt.bench.example.net",
        "site": f"site-{site:05d}",
        "tags": tags,
        "credentials": {"username_env": "QOECTL_USER", "key_file": "~/.ssh/qoectl_ed25519"},
        "interfaces": interfaces,
        "features": list(profile.features),
    }


def _journey(index: int, kind: str, number: int) -> tuple[dict[str, Any], frozenset[str]]:
    """One journey's spec and the capabilities it needs on a device."""
    net4 = f"198.18.{index}.0/24"
    net6 = f"2001:db8:{index:x}::/48"
    needs = {cap.MARKING, cap.QUEUING}
    match: list[dict[str, Any]]
    bandwidth: dict[str, Any]
    extra: dict[str, Any] = {}
    if kind == "voice":
        match = [{"protocol": "udp", "destination_ports": ["16384-32767"], "destination_prefixes": [net4]}]
        codec = "g711" if number % 2 == 0 else "g729a"
        target: dict[str, Any] = {"voice": {"codec": codec, "mos": 4.0 if codec == "g711" else 3.7}}
        bandwidth, priority = {"per_flow_kbps": 90, "concurrent_flows": 10}, "critical"
        needs.add(cap.PORT_RANGES)
    elif kind == "signaling":
        match = [{"protocol": "tcp", "destination_ports": [5060, 5061], "destination_prefixes": [net4]}]
        target = {"interactive": {"apdex_t_ms": 1000, "apdex": 0.95, "round_trips": 3}}
        bandwidth, priority = {"per_flow_kbps": 10, "concurrent_flows": 20}, "high"
        extra["service_class"] = "signaling"
    elif kind == "conferencing":
        match = [{"protocol": "udp", "destination_ports": [9000 + number], "destination_prefixes": [net4]}]
        if number % 2 == 0:
            match.append({"protocol": "udp", "destination_ports": [9000 + number], "destination_prefixes": [net6]})
            needs.add(cap.IPV6)
        target = {"video": {"mode": "conferencing", "bitrate_kbps": 1500}}
        bandwidth, priority = {"share_pct": 2}, "high"
    elif kind == "streaming":
        match = [{"protocol": "tcp", "destination_ports": [443], "destination_prefixes": [net4]}]
        target = {"video": {"mode": "streaming", "bitrate_kbps": 2500, "startup_s": 4, "rebuffering_pct": 1}}
        bandwidth, priority = {"share_pct": 2}, "normal"
    elif kind == "interactive":
        ports: list[Any] = [443] if number % 3 else [f"{8000 + 10 * number}-{8009 + 10 * number}"]
        if number % 3 == 0:
            needs.add(cap.PORT_RANGES)
        match = [{"protocol": "tcp", "destination_ports": ports, "destination_prefixes": [net4]}]
        target = {"interactive": {"apdex_t_ms": 1000 + 100 * (number % 5), "apdex": 0.9}}
        bandwidth, priority = {"share_pct": 1.5}, ("high", "normal", "low")[number % 3]
    elif kind == "bulk":
        match = [{"protocol": "tcp", "destination_ports": [8400 + number], "destination_prefixes": [net4]}]
        target = {"bulk": {"min_throughput_kbps": 1000}}
        bandwidth, priority = {"share_pct": 1}, "low"
    else:
        match = [
            {"protocol": "tcp", "destination_ports": [80, 443], "destination_prefixes": [net4, f"198.19.{index}.0/24"]}
        ]
        target = {"bulk": {"scavenger": True}}
        bandwidth, priority = {"share_pct": 1}, "scavenger"
    cls = next(c for c in RFC4594 if c.name == CLASS_OF_KIND[kind])
    needs.add(f"class:{cls.name}")  # a queue of its own (see KEEP_ORDER)
    needs |= {cap.STRICT_PRIORITY} if cls.strict_priority else set()
    needs |= {cap.AQM} if cls.aqm else set()
    needs |= {cap.FAIR_QUEUE} if cls.fair_queue else set()
    spec = {
        "traffic": {"application": f"{kind}-app-{number}", "category": kind, "match": match},
        "target": target,
        "priority": priority,
        "bandwidth": bandwidth,
        **extra,
    }
    return spec, frozenset(needs)


def _scope(index: int, dc_sites: list[str]) -> dict[str, Any]:
    """Business scope: everywhere, by context, by tag, by region tag, or a few named sites."""
    form = index % 6
    if form == 1:
        return {"contexts": ["branch"]}
    if form == 2:
        return {"contexts": ["campus", "datacenter"]}
    if form == 3:
        return {"device_tags": ["wan-edge"]}
    if form == 4:
        return {"device_tags": [f"region-{REGIONS[index % len(REGIONS)]}"]}
    if form == 5 and index % 12 == 5:
        return {"sites": dc_sites}
    return {}


def generate(root: Path, devices: int = 10_000, journeys: int = 50, seed: int = 1) -> FleetInfo:
    """Write the policy repository into ``root`` (created; must be empty or missing)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    profs = profiles()
    site_count = max(3, -(-devices // DEVICES_PER_SITE))
    site_docs = [
        {
            "name": f"site-{s:05d}",
            "context": _site_context(s),
            "region": REGIONS[s % len(REGIONS)],
            "sdwan_site_id": 1000 + s,  # Cisco SD-WAN edges get apply-policy for their site
        }
        for s in range(site_count)
    ]
    _dump(root / "qoectl.yaml", [_doc("Settings", "bench", {"priority_cap_pct": 33, "default_class_min_pct": 5})])
    _dump(
        root / "inventory" / "sites.yaml",
        [_doc("Inventory", "sites", {"sites": site_docs, "transports": list(TRANSPORTS)})],
    )
    files = 2
    interfaces = 0
    used: set[str] = set()  # profile tags that some device carries
    for start in range(0, devices, DEVICES_PER_FILE):
        batch = []
        for i in range(start, min(devices, start + DEVICES_PER_FILE)):
            dev = _device(i, _profile_for(i, profs), i // DEVICES_PER_SITE, rng)
            interfaces += len(dev["interfaces"])
            used.update(t for t in dev["tags"] if t.startswith("qos-"))
            batch.append(dev)
        _dump(
            root / "inventory" / f"devices-{start // DEVICES_PER_FILE:03d}.yaml",
            [_doc("Inventory", f"devices-{start}", {"devices": batch})],
        )
        files += 1
    dc_sites = [s["name"] for s in site_docs if s["context"] == "datacenter"][:3] or [site_docs[0]["name"]]
    kinds = [kind for kind, n in JOURNEY_MIX for _ in range(n)]
    by_group: dict[str, list[dict[str, Any]]] = {}
    for index in range(journeys):
        kind = kinds[index % len(kinds)]
        spec, needs = _journey(index, kind, index // len(kinds) * 100 + kinds[: index % len(kinds)].count(kind))
        scope = _scope(index, dc_sites)
        unable = [p for p in profs if not needs <= p.can_express()]
        if unable:
            # Platforms that cannot express this journey are scoped away by their profile tags.
            able = [p.tag for p in profs if needs <= p.can_express() and p.tag in used]
            if not able:
                raise ValueError(f"no platform in the fleet can express a {kind} journey (needs {sorted(needs)})")
            scope = {k: v for k, v in scope.items() if k != "device_tags"}
            scope["device_tags"] = able
        if scope:
            spec["scope"] = scope
        by_group.setdefault(kind, []).append(_doc("Journey", f"{kind}-{index:03d}", spec))
    for kind, docs in sorted(by_group.items()):
        _dump(root / "journeys" / f"{kind}.yaml", docs)
        files += 1
    return FleetInfo(root, devices, journeys, site_count, interfaces, tuple(p.platform for p in profs), files)
